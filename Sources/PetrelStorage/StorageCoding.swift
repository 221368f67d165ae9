import Foundation
import MQTTWire
import NIOCore

/// Conversions between the engine's values and the columns of the store.
enum StorageCoding {
    /// MQTT 5 properties as their wire encoding (length prefix and block); nil when there are none.
    static func encode(_ properties: MQTTProperties) -> [UInt8]? {
        guard properties != MQTTProperties() else { return nil }
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        guard (try? buffer.writeMQTTProperties(properties)) != nil else { return nil }
        return buffer.readBytes(length: buffer.readableBytes)
    }

    static func decodeProperties(_ bytes: [UInt8]?, context: MQTTPropertyContext) throws -> MQTTProperties {
        guard let bytes, !bytes.isEmpty else { return MQTTProperties() }
        var buffer = ByteBuffer(bytes: bytes)
        guard let properties = try buffer.readMQTTProperties(for: context) else {
            throw StorageError(.corrupt, "a stored property block is cut short")
        }
        return properties
    }

    static func bytes(_ buffer: ByteBuffer) -> [UInt8] {
        buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []
    }

    /// The wall clock in Unix milliseconds.
    static func wallClockMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }

    /// An engine-clock deadline as Unix milliseconds, relative to the clocks' readings now.
    static func wallClock(_ deadline: NIODeadline, engineNow: NIODeadline, wallNow: Int64) -> Int64 {
        wallNow + (deadline - engineNow).nanoseconds / 1_000_000
    }

    static func engineClock(_ milliseconds: Int64, engineNow: NIODeadline, wallNow: Int64) -> NIODeadline {
        engineNow + .milliseconds(milliseconds - wallNow)
    }

    static func encodeIdentifiers(_ identifiers: [UInt32]) -> String {
        identifiers.map(String.init).joined(separator: ",")
    }

    static func decodeIdentifiers(_ text: String) -> [UInt32] {
        text.split(separator: ",").compactMap { UInt32($0) }
    }
}
