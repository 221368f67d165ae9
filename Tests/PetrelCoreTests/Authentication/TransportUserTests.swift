import MQTTWire
import NIOCore
import Testing

@testable import PetrelCore

/// A broker that lets nobody in by password: only a name the transport proves gets a client in.
private func closedBroker() -> Broker {
    var configuration = BrokerConfiguration()
    configuration.authenticator = PasswordAuthenticator(file: PasswordFile(), allowAnonymous: false)
    return Broker(configuration: configuration, now: at(0))
}

private func connect(_ version: ProtocolVersion, user: ConnectionStateMachine.TransportUser, username: String? = nil)
    -> (ConnectionStateMachine, ConnectionActions)
{
    var machine = ConnectionStateMachine(broker: closedBroker(), waker: RecordingWaker(), remoteAddress: "127.0.0.1:9", now: at(0))
    machine.useTransportUser(user)
    let actions = machine.receive(
        .connect(
            MQTTPacket.Connect(
                protocolVersion: version,
                clientIdentifier: "device-1",
                username: username,
                password: username.map { ByteBuffer(string: "wrong-\($0)") }
            )
        ),
        now: at(0)
    )
    return (machine, actions)
}

@Suite("The user name a TLS client certificate proves")
struct TransportUserTests {
    @Test("A proven name is the user; the CONNECT's user name and password are not checked", arguments: [ProtocolVersion.v3_1_1, .v5])
    func provenNameIsTheUser(version: ProtocolVersion) {
        let (machine, actions) = connect(version, user: .proven("alice"), username: "mallory")
        #expect(connack(actions)?.reasonCode == .success)
        #expect(machine.authenticatedUser == "alice")
    }

    @Test("Without a certificate the client is refused: 0x87 Not authorized (3.1.1: 0x05)", arguments: [ProtocolVersion.v3_1_1, .v5])
    func noCertificateIsRefused(version: ProtocolVersion) {
        let (machine, actions) = connect(version, user: .proven(nil), username: "alice")
        let ack = connack(actions)
        #expect(ack?.reasonCode == .notAuthorized)
        #expect(LegacyConnectReturnCode(ack!.reasonCode) == .notAuthorized)
        #expect(actions.close)
        #expect(!machine.isConnected)
    }

    @Test("Without a transport user the authenticator decides as before")
    func fromConnectKeepsTheAuthenticator() {
        let (machine, actions) = connect(.v5, user: .fromConnect, username: "alice")
        #expect(connack(actions)?.reasonCode != .success)
        #expect(!machine.isConnected)
    }
}
