import NIOCore

/// One access check put to an `ExternalAuthorizer`: may this client publish to this topic name, or subscribe
/// with this topic filter (a shared subscription's filter without its `$share/NAME/`)?
public struct AuthorizationRequest: Sendable, Hashable {
    public var identity: ClientIdentity
    /// `.publish` (also for the will, at CONNECT) or `.subscribe`; deliveries follow from the subscription.
    public var action: AccessAction
    public var topic: String

    public init(identity: ClientIdentity, action: AccessAction, topic: String) {
        self.identity = identity
        self.action = action
        self.topic = topic
    }
}

/// Decides access checks where the decision takes I/O, such as an HTTP call. The engine stays pure: it asks
/// `cachedDecision` first; when that has no answer, the packet waits, the engine returns the requests in
/// `ConnectionActions.authorizationRequests`, the server calls `decide` and hands the answers back with
/// `ConnectionStateMachine.externalAuthorizationDecided(_:now:)`, and the packet is handled again with them.
///
/// It comes after the `Authorizer` (an ACL file): a client needs both to allow.
public protocol ExternalAuthorizer: Sendable {
    /// An answer known without I/O (an earlier one, still fresh), or nil to ask `decide`.
    func cachedDecision(_ request: AuthorizationRequest, now: NIODeadline) -> Bool?
    /// True to allow. Fails closed: an authorizer that cannot get an answer (a timeout, an error) denies.
    func decide(_ request: AuthorizationRequest) async -> Bool
}

extension ExternalAuthorizer {
    /// The answers to `requests`, in their order, with at most `concurrency` of them asked at once: a SUBSCRIBE
    /// of many filters must not open as many requests together.
    public func decide(all requests: [AuthorizationRequest], concurrency: Int = 8) async -> [Bool] {
        if requests.count == 1 { return [await self.decide(requests[0])] }
        var answers = [Bool](repeating: false, count: requests.count)
        await withTaskGroup(of: (Int, Bool).self) { group in
            var next = 0
            func start() {
                let index = next
                let request = requests[index]
                next += 1
                group.addTask { (index, await self.decide(request)) }
            }
            while next < min(concurrency, requests.count) { start() }
            for await (index, allowed) in group {
                answers[index] = allowed
                if next < requests.count { start() }
            }
        }
        return answers
    }
}
