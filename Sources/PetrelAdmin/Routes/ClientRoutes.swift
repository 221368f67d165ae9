import Hummingbird
import PetrelCore

/// `/api/v1/clients`: the connected clients. `DELETE /clients/{client_id}` disconnects one (MQTT 5: DISCONNECT
/// 0x98 Administrative action); its session stays as long as its expiry interval says.
struct ClientRoutes {
    let api: AdminAPI

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        let api = self.api
        group.get("clients") { request, _ in
            let paging = try Paging(request)
            let connected = api.broker.sessionSnapshots(
                matching: request.query("filter"), connectedOnly: true, now: api.now)
            let page = QueryPage(of: connected, offset: paging.offset, limit: paging.limit)
            let items = page.items.compactMap { snapshot in snapshot.connection.map { ClientSummaryBody(snapshot, $0) }
            }
            return JSONResponse.make(
                PageBody(items: items, total: page.total, limit: paging.limit, offset: paging.offset))
        }
        group.get("clients/:client_id") { _, context in
            let clientIdentifier = try context.pathParameter("client_id")
            guard let snapshot = api.broker.sessionSnapshot(clientIdentifier: clientIdentifier, now: api.now),
                snapshot.isConnected
            else { throw APIError.notFound("no client '\(clientIdentifier)' is connected") }
            return JSONResponse.make(SessionBody(snapshot))
        }
        group.delete("clients/:client_id") { _, context in
            let clientIdentifier = try context.pathParameter("client_id")
            let result = api.broker.disconnectClient(clientIdentifier)
            guard result.found else { throw APIError.notFound("no client '\(clientIdentifier)' is connected") }
            api.carryOut(result)
            return JSONResponse.noContent()
        }
    }
}
