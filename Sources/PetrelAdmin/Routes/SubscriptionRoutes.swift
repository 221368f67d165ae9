import Hummingbird
import PetrelCore

/// `/api/v1/subscriptions` (each subscription of each session) and `/api/v1/topics` (each subscribed filter with
/// its number of subscribers).
struct SubscriptionRoutes {
    let api: AdminAPI

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        let api = self.api
        group.get("subscriptions") { request, _ in
            let paging = try Paging(request)
            let page = QueryPage(
                of: api.broker.subscriptionSnapshots(matching: request.query("filter")), offset: paging.offset,
                limit: paging.limit)
            return JSONResponse.make(
                PageBody(
                    items: page.items.map(SubscriptionBody.init), total: page.total, limit: paging.limit,
                    offset: paging.offset)
            )
        }
        group.get("topics") { request, _ in
            let paging = try Paging(request)
            let page = QueryPage(
                of: api.broker.subscribedTopics(matching: request.query("filter")), offset: paging.offset,
                limit: paging.limit)
            return JSONResponse.make(
                PageBody(
                    items: page.items.map { TopicBody(filter: $0.filter, subscribers: $0.subscribers) },
                    total: page.total,
                    limit: paging.limit,
                    offset: paging.offset
                )
            )
        }
    }
}
