import NIOCore
import Synchronization

/// Bound addresses, published by `run()` and awaited by whoever needs the port (tests binding port 0).
final class AsyncStreamBox: Sendable {
    private struct State {
        var addresses: [SocketAddress?] = []
        var waiters: [(count: Int, continuation: CheckedContinuation<[SocketAddress], Never>)] = []
    }
    private let state = Mutex(State())

    func append(_ address: SocketAddress?) {
        let ready = state.withLock { state -> [(CheckedContinuation<[SocketAddress], Never>, [SocketAddress])] in
            state.addresses.append(address)
            let all = state.addresses.compactMap { $0 }
            var fire: [(CheckedContinuation<[SocketAddress], Never>, [SocketAddress])] = []
            state.waiters.removeAll { waiter in
                guard state.addresses.count >= waiter.count else { return false }
                fire.append((waiter.continuation, all))
                return true
            }
            return fire
        }
        for (continuation, addresses) in ready { continuation.resume(returning: addresses) }
    }

    func wait(count: Int) async -> [SocketAddress] {
        await withCheckedContinuation { continuation in
            let ready: [SocketAddress]? = state.withLock { state in
                if state.addresses.count >= count { return state.addresses.compactMap { $0 } }
                state.waiters.append((count, continuation))
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
