import Hummingbird
import PetrelCore

/// `/api/v1/retained`: retained messages, listed by an MQTT topic filter; `/api/v1/retained/{topic}` reads or
/// deletes one. The topic stands in the path as it is (`/api/v1/retained/home/kitchen/temp`), its levels
/// percent-encoded where needed ('/' as %2F for an empty level, '#' as %23, '+' as %2B).
struct RetainedRoutes {
    let api: AdminAPI

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        let api = self.api
        group.get("retained") { request, _ in
            let paging = try Paging(request)
            let filter = request.query("filter")
            if let filter {
                guard MQTTTopic.isValidTopicFilter(filter), filter.utf8.count <= Int(UInt16.max) else {
                    throw APIError.badRequest("filter must be a valid MQTT topic filter", field: "filter")
                }
                if case .notShared = MQTTTopic.parseSharedSubscription(filter) {
                } else {
                    throw APIError.badRequest("filter must not be a shared subscription", field: "filter")
                }
            }
            let page = QueryPage(
                of: api.broker.retainedMessageList(filter: filter, now: api.now), offset: paging.offset,
                limit: paging.limit)
            return JSONResponse.make(
                PageBody(
                    items: page.items.map(RetainedMessageBody.init), total: page.total, limit: paging.limit,
                    offset: paging.offset)
            )
        }
        group.get("retained/**") { _, context in
            let topic = try Self.topic(context)
            guard let message = api.broker.retainedMessage(topic: topic, now: api.now) else {
                throw APIError.notFound("no retained message on '\(topic)'")
            }
            return JSONResponse.make(RetainedMessageBody(message))
        }
        group.delete("retained/**") { _, context in
            let topic = try Self.topic(context)
            let result = api.broker.removeRetainedMessage(topic: topic)
            guard result.found else { throw APIError.notFound("no retained message on '\(topic)'") }
            return JSONResponse.noContent()
        }
    }

    private static func topic(_ context: some RequestContext) throws(APIError) -> String {
        let topic = try context.catchAllParameter("topic")
        guard MQTTTopic.isValidTopicName(topic), topic.utf8.count <= Int(UInt16.max) else {
            throw .badRequest("topic must be a valid MQTT topic name (no wildcards)", field: "topic")
        }
        return topic
    }
}
