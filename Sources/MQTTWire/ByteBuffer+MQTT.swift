import NIOCore

/// Limits of the MQTT variable byte integer (spec 1.5.5): 1 to 4 bytes, 7 bits each, least significant first.
public enum MQTTVariableByteInteger {
    /// 268,435,455: four bytes of seven bits.
    public static let maximum = 268_435_455

    /// The number of bytes `value` takes on the wire (1...4). `value` must be in `0...maximum`.
    @inlinable
    public static func encodedLength(_ value: Int) -> Int {
        switch value {
        case ..<128: return 1
        case ..<16_384: return 2
        case ..<2_097_152: return 3
        default: return 4
        }
    }
}

// MARK: - Variable byte integer

extension ByteBuffer {
    /// Reads a variable byte integer at `index` without moving the reader index.
    ///
    /// Returns `nil` when the buffer ends before the last byte of the integer. Throws `.malformedPacket` when a
    /// fourth byte still has its continuation bit set, or when the encoding is longer than needed: MQTT 5 makes
    /// the minimal encoding normative [MQTT-1.5.5-1] and 3.1.1's algorithm (2.2.3) produces nothing else.
    public func getMQTTVariableByteInteger(at index: Int) throws -> (value: Int, length: Int)? {
        var value = 0
        var shift = 0
        for offset in 0..<4 {
            guard let byte = self.getInteger(at: index + offset, as: UInt8.self) else { return nil }
            value |= Int(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                if offset > 0 && byte == 0 {
                    throw MQTTWireError.malformedPacket("variable byte integer is not minimally encoded [MQTT-1.5.5-1]")
                }
                return (value, offset + 1)
            }
            shift += 7
        }
        throw MQTTWireError.malformedPacket("variable byte integer longer than four bytes")
    }

    /// Reads a variable byte integer; `nil` (reader index untouched) when more bytes are needed.
    public mutating func readMQTTVariableByteInteger() throws -> Int? {
        guard let (value, length) = try self.getMQTTVariableByteInteger(at: self.readerIndex) else { return nil }
        self.moveReaderIndex(forwardBy: length)
        return value
    }

    /// Writes `value` in the fewest bytes [MQTT-1.5.5-1]; throws `.packetTooLarge` above 268,435,455.
    @discardableResult
    public mutating func writeMQTTVariableByteInteger(_ value: Int) throws -> Int {
        guard value >= 0, value <= MQTTVariableByteInteger.maximum else {
            throw MQTTWireError.packetTooLarge("\(value) does not fit a variable byte integer")
        }
        var remaining = value
        var written = 0
        repeat {
            var byte = UInt8(remaining & 0x7F)
            remaining >>= 7
            if remaining > 0 { byte |= 0x80 }
            written += self.writeInteger(byte)
        } while remaining > 0
        return written
    }
}

// MARK: - Integers

extension ByteBuffer {
    /// A big-endian two-byte integer (spec 1.5.2); `nil` when fewer than two bytes are readable.
    public mutating func readMQTTTwoByteInteger() -> UInt16? {
        self.readInteger(endianness: .big, as: UInt16.self)
    }

    @discardableResult
    public mutating func writeMQTTTwoByteInteger(_ value: UInt16) -> Int {
        self.writeInteger(value, endianness: .big)
    }

    /// A big-endian four-byte integer (spec 1.5.3); `nil` when fewer than four bytes are readable.
    public mutating func readMQTTFourByteInteger() -> UInt32? {
        self.readInteger(endianness: .big, as: UInt32.self)
    }

    @discardableResult
    public mutating func writeMQTTFourByteInteger(_ value: UInt32) -> Int {
        self.writeInteger(value, endianness: .big)
    }
}

// MARK: - UTF-8 strings, binary data, string pairs

extension ByteBuffer {
    /// Reads a UTF-8 encoded string with its two-byte length prefix (spec 1.5.4).
    ///
    /// Returns `nil` (reader index untouched) when the string is not complete yet. Throws `.invalidUTF8` for
    /// ill-formed UTF-8 including encoded surrogates [MQTT-1.5.4-1] and for U+0000 [MQTT-1.5.4-2]. A leading
    /// U+FEFF is kept as part of the string [MQTT-1.5.4-3].
    public mutating func readMQTTString() throws -> String? {
        guard let length = self.getInteger(at: self.readerIndex, endianness: .big, as: UInt16.self),
            self.readableBytes >= 2 + Int(length)
        else { return nil }
        let string = try self.withUnsafeReadableBytes { bytes in
            try MQTTUTF8.decode(UnsafeRawBufferPointer(rebasing: bytes[2..<(2 + Int(length))]))
        }
        self.moveReaderIndex(forwardBy: 2 + Int(length))
        return string
    }

    /// Moves past a UTF-8 string (two-byte length and bytes) and returns true when its bytes are exactly those of
    /// `candidate`; leaves the buffer untouched and returns false otherwise (or when incomplete). A string equal
    /// to one already decoded needs no second decoding, validation or allocation.
    public mutating func readMQTTString(equalTo candidate: String) -> Bool {
        guard let length = self.getInteger(at: self.readerIndex, endianness: .big, as: UInt16.self),
            self.readableBytes >= 2 + Int(length)
        else { return false }
        let equal = candidate.utf8.withContiguousStorageIfAvailable { utf8 in
            utf8.count == Int(length)
                && self.withUnsafeReadableBytes { bytes in
                    UnsafeRawBufferPointer(rebasing: bytes[2..<(2 + Int(length))]).elementsEqual(utf8)
                }
        }
        guard equal == true else { return false }
        self.moveReaderIndex(forwardBy: 2 + Int(length))
        return true
    }

    /// Writes `string` with its two-byte length prefix. Throws `.malformedPacket` when it is longer than
    /// 65,535 bytes, leaving the buffer as it was. The content is not validated: strings come from our own
    /// decoder or configuration.
    @discardableResult
    public mutating func writeMQTTString(_ string: String) throws -> Int {
        let count = string.utf8.count
        guard count <= Int(UInt16.max) else {
            throw MQTTWireError.malformedPacket("a UTF-8 string of \(count) bytes exceeds 65,535 bytes")
        }
        return self.writeInteger(UInt16(count), endianness: .big) + self.writeString(string)
    }

    /// Reads binary data with its two-byte length prefix (spec 1.5.6) as a slice of this buffer (no copy);
    /// `nil` (reader index untouched) when incomplete.
    public mutating func readMQTTBinaryData() -> ByteBuffer? {
        guard let length = self.getInteger(at: self.readerIndex, endianness: .big, as: UInt16.self),
            self.readableBytes >= 2 + Int(length)
        else { return nil }
        self.moveReaderIndex(forwardBy: 2)
        return self.readSlice(length: Int(length))
    }

    /// Writes the readable bytes of `data` with a two-byte length prefix; throws `.malformedPacket` above
    /// 65,535 bytes.
    @discardableResult
    public mutating func writeMQTTBinaryData(_ data: ByteBuffer) throws -> Int {
        let count = data.readableBytes
        guard count <= Int(UInt16.max) else {
            throw MQTTWireError.malformedPacket("binary data of \(count) bytes exceeds 65,535 bytes")
        }
        return self.writeInteger(UInt16(count), endianness: .big) + self.writeImmutableBuffer(data)
    }

    /// Reads a UTF-8 string pair (spec 1.5.7), both strings validated [MQTT-1.5.7-1]; `nil` (reader index
    /// untouched) when incomplete.
    public mutating func readMQTTStringPair() throws -> UserProperty? {
        let start = self.readerIndex
        guard let name = try self.readMQTTString() else { return nil }
        guard let value = try self.readMQTTString() else {
            self.moveReaderIndex(to: start)
            return nil
        }
        return UserProperty(name: name, value: value)
    }

    @discardableResult
    public mutating func writeMQTTStringPair(_ pair: UserProperty) throws -> Int {
        let start = self.writerIndex
        do {
            return try self.writeMQTTString(pair.name) + self.writeMQTTString(pair.value)
        } catch {
            self.moveWriterIndex(to: start)
            throw error
        }
    }
}

// MARK: - UTF-8 validation

/// A UTF-8 validator with MQTT's extra rule: no U+0000.
///
/// Written out rather than using `String(validating:)` because that initialiser needs macOS 15 while the package
/// supports macOS 14, and because one pass can check both rules.
enum MQTTUTF8 {
    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> String {
        try validate(bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func validate(_ bytes: UnsafeRawBufferPointer) throws {
        var index = 0
        let count = bytes.count
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 {
                if lead == 0 { throw MQTTWireError.invalidUTF8("string contains U+0000 [MQTT-1.5.4-2]") }
                index += 1
                continue
            }
            // The range allowed for the second byte excludes overlong forms, surrogates (ED A0..BF) and code
            // points above U+10FFFF (Unicode table 3-7).
            let length: Int
            var secondRange: ClosedRange<UInt8> = 0x80...0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; secondRange = 0xA0...0xBF
            case 0xED: length = 3; secondRange = 0x80...0x9F
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xF0: length = 4; secondRange = 0x90...0xBF
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; secondRange = 0x80...0x8F
            default: throw MQTTWireError.invalidUTF8("ill-formed UTF-8 lead byte [MQTT-1.5.4-1]")
            }
            guard index + length <= count else {
                throw MQTTWireError.invalidUTF8("truncated UTF-8 sequence [MQTT-1.5.4-1]")
            }
            let second = bytes[index + 1]
            guard secondRange.contains(second) else {
                if lead == 0xED && second >= 0xA0 && second <= 0xBF {
                    throw MQTTWireError.invalidUTF8("string encodes a surrogate code point [MQTT-1.5.4-1]")
                }
                throw MQTTWireError.invalidUTF8("ill-formed UTF-8 sequence [MQTT-1.5.4-1]")
            }
            var offset = 2
            while offset < length {
                guard bytes[index + offset] & 0xC0 == 0x80 else {
                    throw MQTTWireError.invalidUTF8("ill-formed UTF-8 sequence [MQTT-1.5.4-1]")
                }
                offset += 1
            }
            index += length
        }
    }
}
