import NIOCore
import PetrelCore

/// Each access check, a PUBLISH's topic, a SUBSCRIBE's filter or a will's topic, is decided by an HTTP
/// service, after the ACL file (if any) allows it: Petrel posts `{"clientid", "username", "action":
/// "publish"|"subscribe", "topic"}` and reads the answer as `HTTPCallout` describes. Allowing and denying
/// answers are cached per client, action and topic for the cache's time to live; no answer (a timeout, an
/// error) denies and is not cached, so the next packet asks again.
public struct HTTPAuthorizer: ExternalAuthorizer {
    private let callout: HTTPCallout
    private let cache: DecisionCache<AuthorizationRequest, Bool>
    private let onFailure: @Sendable (AuthorizationRequest, String) -> Void

    /// `onFailure` hears of each check that got no answer (for a log line).
    public init(
        callout: HTTPCallout,
        cacheTimeToLive: TimeAmount,
        cacheCapacity: Int = 100_000,
        onFailure: @escaping @Sendable (AuthorizationRequest, String) -> Void = { _, _ in }
    ) {
        self.callout = callout
        self.cache = DecisionCache(timeToLive: cacheTimeToLive, capacity: cacheCapacity)
        self.onFailure = onFailure
    }

    public func cachedDecision(_ request: AuthorizationRequest, now: NIODeadline) -> Bool? {
        self.cache.decision(for: request, now: now)
    }

    public func decide(_ request: AuthorizationRequest) async -> Bool {
        var document = [
            "clientid": request.identity.clientIdentifier,
            "action": request.action == .subscribe ? "subscribe" : "publish",
            "topic": request.topic,
        ]
        if let username = request.identity.username { document["username"] = username }
        switch await self.callout.post(document) {
        case .allow:
            self.cache.store(true, for: request, now: .now())
            return true
        case .deny:
            self.cache.store(false, for: request, now: .now())
            return false
        case .failure(let reason):
            self.onFailure(request, reason)
            return false
        }
    }
}
