#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The stack that deep-input tests run on: far smaller than any thread's default, so that a walk recursing once
/// per topic level (32,768 levels at most) overflows it at once and the test process crashes, while loops run
/// on it untroubled.
public let smallStackBytes = 256 * 1024

/// Runs `body` on a new thread with a `smallStackBytes` stack and waits for it.
public func onSmallStack(_ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        // Written before the thread starts and read by it alone; pthread_create and pthread_join order the accesses.
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setstacksize(&attributes, smallStackBytes)
    let box = Unmanaged.passRetained(Box(body))
    #if canImport(Glibc)
    var thread = pthread_t()
    #else
    var thread: pthread_t?
    #endif
    let created = pthread_create(&thread, &attributes, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, box.toOpaque())
    precondition(created == 0, "pthread_create failed: \(created)")
    #if canImport(Glibc)
    pthread_join(thread, nil)
    #else
    pthread_join(thread!, nil)
    #endif
}

/// Topics and filters as deep as a 65,535-byte string allows.
public enum DeepTopics {
    /// `x/y/y/.../y`: 32,768 levels in 65,535 bytes.
    public static let topic = "x" + String(repeating: "/y", count: 32_767)
    /// `x/+/+/.../+/#`: 32,768 levels in 65,535 bytes, matching `topic`.
    public static let wildcardFilter = "x" + String(repeating: "/+", count: 32_766) + "/#"
    /// `x/y/.../y/+`: 32,768 levels, matching `topic` at its last level.
    public static let exactThenPlus = "x" + String(repeating: "/y", count: 32_766) + "/+"
    public static let levels = 32_768
}
