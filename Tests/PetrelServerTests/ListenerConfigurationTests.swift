import PetrelServer
import Testing

@Suite("Listener URLs")
struct ListenerConfigurationTests {
    @Test("Each transport, with its port and path")
    func parsesEachTransport() throws {
        let mqtt = try ListenerConfiguration(url: "mqtt://0.0.0.0:1883")
        #expect(mqtt == ListenerConfiguration(transport: .mqtt, host: "0.0.0.0", port: 1883))
        let mqtts = try ListenerConfiguration(url: "mqtts://127.0.0.1:0")
        #expect(mqtts.transport == .mqtts && mqtts.port == 0)
        let ws = try ListenerConfiguration(url: "ws://127.0.0.1:8080/custom")
        #expect(ws.transport == .ws && ws.path == "/custom" && ws.port == 8080)
        let wss = try ListenerConfiguration(url: "WSS://[::1]:8443")
        #expect(wss.transport == .wss && wss.host == "::1" && wss.path == "/mqtt")
        #expect(wss.url(port: 9000) == "wss://[::1]:9000/mqtt")
    }

    @Test("A missing port is the transport's usual one")
    func defaultPorts() throws {
        #expect(try ListenerConfiguration(url: "mqtt://localhost").port == 1883)
        #expect(try ListenerConfiguration(url: "mqtts://localhost").port == 8883)
        #expect(try ListenerConfiguration(url: "ws://localhost/mqtt").port == 8080)
        #expect(try ListenerConfiguration(url: "wss://[::]").port == 8443)
    }

    @Test(
        "Malformed URLs are refused with the reason",
        arguments: [
            "127.0.0.1:1883", "http://127.0.0.1:80", "mqtt://:1883", "mqtt://127.0.0.1:65536", "mqtt://127.0.0.1:x",
            "mqtt://::1:1883", "mqtt://[::1", "mqtt://127.0.0.1:1883/path", "mqtt://[::1]1883",
        ]
    )
    func refusesMalformed(url: String) {
        #expect(throws: ListenerConfigurationError.self) { try ListenerConfiguration(url: url) }
    }
}
