extension MQTTProperties {
    /// Without Reason String and User Properties: what may be left out of a packet to fit the client's
    /// Maximum Packet Size [MQTT-3.1.2-25] (spec 3.4.2.2.2, 3.9.2.1.2, 3.14.2.2.3, ...).
    var withoutProblemInformation: MQTTProperties {
        var copy = self
        copy.reasonString = nil
        copy.userProperties = []
        return copy
    }
}

extension MQTTPacket {
    /// The same packet without Reason String and User Properties, or nil when it has none to leave out
    /// (or is a PUBLISH, whose user properties belong to the application message).
    public var withoutProblemInformation: MQTTPacket? {
        func stripped(_ properties: MQTTProperties) -> MQTTProperties? {
            let result = properties.withoutProblemInformation
            return result == properties ? nil : result
        }
        switch self {
        case .connack(var packet):
            guard let properties = stripped(packet.properties) else { return nil }
            packet.properties = properties
            return .connack(packet)
        case .puback(var packet):
            guard let properties = stripped(packet.properties) else { return nil }
            packet.properties = properties
            return .puback(packet)
        case .pubrec(var packet):
            guard let properties = stripped(packet.properties) else { return nil }
            packet.properties = properties
            return .pubrec(packet)
        case .pubrel(var packet):
            guard let properties = stripped(packet.properties) else { return nil }
            packet.properties = properties
            return .pubrel(packet)
        case .pubcomp(var packet):
            guard let properties = stripped(packet.properties) else { return nil }
            packet.properties = properties
            return .pubcomp(packet)
        case .suback(var packet):
            guard let properties = stripped(packet.properties) else { return nil }
            packet.properties = properties
            return .suback(packet)
        case .unsuback(var packet):
            guard let properties = stripped(packet.properties) else { return nil }
            packet.properties = properties
            return .unsuback(packet)
        case .disconnect(var packet):
            guard let properties = stripped(packet.properties) else { return nil }
            packet.properties = properties
            return .disconnect(packet)
        case .auth(var packet):
            guard let properties = stripped(packet.properties) else { return nil }
            packet.properties = properties
            return .auth(packet)
        case .connect, .publish, .subscribe, .unsubscribe, .pingreq, .pingresp:
            return nil
        }
    }
}
