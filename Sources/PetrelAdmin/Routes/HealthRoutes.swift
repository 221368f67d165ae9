import Hummingbird
import PetrelServer

/// `/health`: the process is up and answers. `/ready`: every MQTT listener is bound and the stored state is loaded
/// (the broker is built from the store before the server starts), and no shutdown has begun: 503 otherwise, so
/// that a load balancer stops sending clients to a broker on its way down.
struct HealthRoutes {
    let server: MQTTServer

    func add(to router: Router<some RequestContext>) {
        router.get("/health") { _, _ in
            Self.plain(.ok, "ok\n")
        }
        let server = self.server
        router.get("/ready") { _, _ in
            switch server.currentPhase {
            case .ready: Self.plain(.ok, "ready\n")
            case .starting: Self.plain(.serviceUnavailable, "starting\n")
            case .stopping, .stopped: Self.plain(.serviceUnavailable, "shutting down\n")
            }
        }
    }

    static func plain(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status,
            headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
    }
}
