import Hummingbird
import PetrelCore

/// `/api/v1/sessions`: every session, connected or not. `DELETE /sessions/{client_id}` removes one: a connected
/// client is disconnected first (DISCONNECT 0x98), and its subscriptions and queued messages go.
struct SessionRoutes {
    let api: AdminAPI

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        let api = self.api
        group.get("sessions") { request, _ in
            let paging = try Paging(request)
            let connectedOnly: Bool?
            switch request.query("connected") {
            case nil: connectedOnly = nil
            case "true": connectedOnly = true
            case "false": connectedOnly = false
            case let other?:
                throw APIError.badRequest("connected must be true or false, not '\(other)'", field: "connected")
            }
            var sessions = api.broker.sessionSnapshots(
                matching: request.query("filter"), connectedOnly: connectedOnly == true, now: api.now)
            if connectedOnly == false { sessions.removeAll { $0.isConnected } }
            let page = QueryPage(of: sessions, offset: paging.offset, limit: paging.limit)
            return JSONResponse.make(
                PageBody(
                    items: page.items.map(SessionBody.init), total: page.total, limit: paging.limit,
                    offset: paging.offset)
            )
        }
        group.get("sessions/:client_id") { _, context in
            let clientIdentifier = try context.pathParameter("client_id")
            guard let snapshot = api.broker.sessionSnapshot(clientIdentifier: clientIdentifier, now: api.now) else {
                throw APIError.notFound("no session for '\(clientIdentifier)'")
            }
            return JSONResponse.make(SessionBody(snapshot))
        }
        group.delete("sessions/:client_id") { _, context in
            let clientIdentifier = try context.pathParameter("client_id")
            let result = api.broker.removeSession(clientIdentifier, now: api.now)
            guard result.found else { throw APIError.notFound("no session for '\(clientIdentifier)'") }
            api.carryOut(result)
            return JSONResponse.noContent()
        }
    }
}
