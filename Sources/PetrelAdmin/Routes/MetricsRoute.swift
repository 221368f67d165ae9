import Hummingbird
import Prometheus

/// `/metrics`: every metric in the Prometheus text exposition format (version 0.0.4), brought up to date first.
struct MetricsRoute {
    let registry: PrometheusCollectorRegistry
    let collector: BrokerMetricsCollector

    func add(to router: Router<some RequestContext>) {
        let registry = self.registry
        let collector = self.collector
        router.get("/metrics") { _, _ in
            collector.collect()
            var bytes: [UInt8] = []
            bytes.reserveCapacity(16 * 1024)
            registry.emit(into: &bytes)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: bytes))
            )
        }
    }
}
