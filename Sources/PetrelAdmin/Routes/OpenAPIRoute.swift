import Hummingbird

/// `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of the admin API (`OpenAPIDocument`), served without
/// a token so that tools can read what to send.
struct OpenAPIRoute {
    private static let document = ByteBuffer(string: OpenAPIDocument.json)

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get("openapi.json") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: Self.document)
            )
        }
    }
}
