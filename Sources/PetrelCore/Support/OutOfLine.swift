/// An immutable value kept on the heap, for a large field that few instances set: a will (about 300 bytes with
/// its properties) costs an idle connection 8 bytes when absent instead of its full size, and when present one
/// copy is shared by the connection and its session. Replaced as a whole, never mutated in place, hence
/// `Sendable` when the value is.
final class OutOfLine<Value> {
    let value: Value

    init(_ value: Value) {
        self.value = value
    }
}

extension OutOfLine: Sendable where Value: Sendable {}
