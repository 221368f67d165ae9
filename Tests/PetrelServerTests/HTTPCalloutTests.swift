import NIOCore
import NIOHTTP1
import PetrelCore
import Testing

@testable import PetrelServer

/// How an HTTP service's answer is read; the interop suite posts to a real one (test_24_http_callout.py).
@Suite("HTTP callout answers")
struct HTTPCalloutTests {
    private func answer(_ code: UInt, _ body: String = "") -> HTTPCallout.Answer {
        HTTPCallout.interpret(status: HTTPResponseStatus(statusCode: Int(code)), body: ByteBuffer(string: body))
    }

    private func allows(_ answer: HTTPCallout.Answer) -> Bool {
        if case .allow = answer { true } else { false }
    }

    private func denies(_ answer: HTTPCallout.Answer) -> Bool {
        if case .deny = answer { true } else { false }
    }

    private func fails(_ answer: HTTPCallout.Answer) -> Bool {
        if case .failure = answer { true } else { false }
    }

    @Test("2xx with an empty body or result allow allows; result deny, another result or none denies")
    func results() {
        #expect(allows(answer(200)))
        #expect(allows(answer(204, " \n")))
        #expect(allows(answer(200, #"{"result": "allow"}"#)))
        #expect(denies(answer(200, #"{"result": "deny"}"#)))
        #expect(denies(answer(200, #"{"result": "ignore"}"#)))
        #expect(denies(answer(200, #"{"ok": true}"#)))
    }

    @Test("4xx denies; 5xx or a body that is not a JSON object is no answer")
    func statuses() {
        #expect(denies(answer(401)))
        #expect(denies(answer(403, "forbidden")))
        #expect(fails(answer(500)))
        #expect(fails(answer(503, #"{"result": "allow"}"#)))
        #expect(fails(answer(302)))
        #expect(fails(answer(200, "allow")))
        #expect(fails(answer(200, "[1, 2]")))
    }

    @Test("An allowing connect answer may name the user and give rules")
    func userAndRules() {
        guard case .allow(let user, let rules) = answer(200, #"{"result": "allow", "user": "alice", "acl": {"pub": ["a/#"], "sub": ["b/+"]}}"#)
        else {
            Issue.record("expected allow")
            return
        }
        #expect(user == "alice")
        #expect(rules?.allows(.publish, "a/x") == true)
        #expect(rules?.allows(.subscribe, "b/x") == true)
        #expect(rules?.allows(.publish, "b/x") == false)
    }

    @Test("A password that is not UTF-8 is posted in Base64")
    func binaryPassword() {
        let credentials = ConnectCredentials(
            protocolVersion: .v3_1_1,
            clientIdentifier: "c",
            username: "u",
            password: [0xFF, 0x00, 0x41],
            remoteAddress: "127.0.0.1:5"
        )
        let document = HTTPAuthenticator.document(credentials)
        #expect(document["password"] == nil)
        #expect(document["password_base64"] == "/wBB")
        #expect(document["protocol"] == "3.1.1")
    }

    @Test("A URL that is not http or https stops the start")
    func validation() {
        #expect(throws: HTTPCallout.CalloutError.self) { try HTTPCallout.validate(.init(url: "ftp://x/")) }
        #expect(throws: HTTPCallout.CalloutError.self) { try HTTPCallout.validate(.init(url: "not a url")) }
        #expect(throws: Never.self) { try HTTPCallout.validate(.init(url: "https://auth.example/mqtt")) }
    }
}
