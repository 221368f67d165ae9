import Testing

@testable import PetrelCore

/// Mosquitto's ACL file syntax and its checks, as Mosquitto 2.0 applies them.
@Suite("ACL files")
struct AccessControlListTests {
    static let example = """
        # anonymous clients
        topic read public/#
        topic weather/+

        user alice
        topic readwrite alice/#
        topic deny alice/secret/#
        topic read $SYS/broker/clients/#

        user bob
        topic write sensors/bob/+

        pattern write devices/%c/status
        pattern read users/%u/inbox/#
        """

    static func rules(_ username: String?, client: String = "c1") throws -> ClientRules {
        try AccessControlList(parsing: example).rules(for: ClientIdentity(clientIdentifier: client, username: username))
    }

    @Test("Lines before any user line are the anonymous clients' rules; access defaults to readwrite")
    func anonymousRules() throws {
        let anonymous = try Self.rules(nil)
        #expect(anonymous.allows(.receive, "public/news"))
        #expect(!anonymous.allows(.publish, "public/news"))
        #expect(anonymous.allows(.publish, "weather/paris"))
        #expect(anonymous.allows(.receive, "weather/paris"))
        #expect(!anonymous.allows(.receive, "alice/notes"))
        // The anonymous rules are not a named user's.
        #expect(!(try Self.rules("carol")).allows(.receive, "public/news"))
    }

    @Test("A user block applies to that user; deny wins over allow wherever it is written")
    func userBlocks() throws {
        let alice = try Self.rules("alice")
        #expect(alice.allows(.publish, "alice/notes"))
        #expect(alice.allows(.receive, "alice/a/b/c"))
        #expect(alice.allows(.receive, "alice"))  // `#` includes the parent level
        #expect(!alice.allows(.receive, "alice/secret/plans"))
        #expect(!alice.allows(.publish, "alice/secret"))
        #expect(!alice.allows(.receive, "public/news"))
        let bob = try Self.rules("bob")
        #expect(bob.allows(.publish, "sensors/bob/t1"))
        #expect(!bob.allows(.receive, "sensors/bob/t1"))
        #expect(!bob.allows(.publish, "sensors/bob/t1/extra"))
    }

    @Test("Patterns fill in the client id and the user name")
    func patterns() throws {
        let alice = try Self.rules("alice", client: "thermostat-7")
        #expect(alice.allows(.publish, "devices/thermostat-7/status"))
        #expect(!alice.allows(.publish, "devices/thermostat-8/status"))
        #expect(alice.allows(.receive, "users/alice/inbox/1"))
        #expect(!alice.allows(.receive, "users/bob/inbox/1"))
        // A %u pattern does not apply to a client without a user name; a %c one does.
        let anonymous = try Self.rules(nil, client: "thermostat-7")
        #expect(anonymous.allows(.publish, "devices/thermostat-7/status"))
        #expect(!anonymous.allows(.receive, "users//inbox/1"))
    }

    @Test("A client id or user name with + or # gets no pattern: it could widen the pattern")
    func dangerousNames() throws {
        #expect(!(try Self.rules("alice", client: "+")).allows(.publish, "devices/x/status"))
        #expect(!(try Self.rules("alice", client: "#")).allows(.publish, "devices/#/status"))
        #expect(!(try Self.rules("#", client: "c1")).allows(.receive, "users/x/inbox/1"))
    }

    @Test("$SYS is reachable only through a rule that names it [MQTT-4.7.2-1]")
    func dollarTopics() throws {
        let list = try AccessControlList(parsing: "topic read #\nuser alice\ntopic read #\ntopic read $SYS/broker/clients/#\n")
        let anonymous = list.rules(for: ClientIdentity(clientIdentifier: "c", username: nil))
        #expect(anonymous.allows(.receive, "anything/at/all"))
        #expect(!anonymous.allows(.receive, "$SYS/broker/uptime"))
        #expect(!anonymous.allows(.subscribe, "$SYS/#"))
        let alice = list.rules(for: ClientIdentity(clientIdentifier: "c", username: "alice"))
        #expect(alice.allows(.receive, "$SYS/broker/clients/connected"))
        #expect(!alice.allows(.receive, "$SYS/broker/uptime"))
        #expect(alice.allows(.subscribe, "$SYS/broker/clients/#"))
        #expect(!alice.allows(.subscribe, "$SYS/#"))
    }

    @Test("A subscription is allowed only when no wider than a rule that lets the client read")
    func subscriptionCoverage() throws {
        let list = try AccessControlList(parsing: "topic read a/+/c\ntopic read b/#\ntopic write w/#\ntopic deny b/private/#\n")
        let rules = list.rules(for: ClientIdentity(clientIdentifier: "c", username: nil))
        #expect(rules.allows(.subscribe, "a/x/c"))
        #expect(rules.allows(.subscribe, "a/+/c"))
        #expect(!rules.allows(.subscribe, "a/#"))
        #expect(!rules.allows(.subscribe, "a/+/+"))
        #expect(!rules.allows(.subscribe, "#"))
        #expect(rules.allows(.subscribe, "b/#"))
        #expect(rules.allows(.subscribe, "b/x/+/y"))
        #expect(rules.allows(.subscribe, "b"))
        // Entirely inside a deny rule: refused; partly inside: allowed, and deliveries are checked one by one.
        #expect(!rules.allows(.subscribe, "b/private/x"))
        #expect(!rules.allows(.receive, "b/private/x"))
        // Write access is not read access.
        #expect(!rules.allows(.subscribe, "w/x"))
    }

    @Test("Topics are compared byte for byte, not after Unicode normalisation [MQTT-4.7.3-4]")
    func noNormalisation() throws {
        let composed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        let list = try AccessControlList(parsing: "topic readwrite \(composed)/#\n")
        let rules = list.rules(for: ClientIdentity(clientIdentifier: "c", username: nil))
        #expect(rules.allows(.publish, "\(composed)/menu"))
        #expect(!rules.allows(.publish, "\(decomposed)/menu"))
    }

    @Test("Topics may contain spaces; comments, blank lines and CRLF line ends are fine")
    func lexical() throws {
        let list = try AccessControlList(parsing: "# c\r\n\r\n  topic read my topic/#  \r\nuser a b\r\ntopic x\r\n")
        #expect(list.anonymousRules.map(\.filter) == ["my topic/#"])
        #expect(list.userRules["a b"]?.map(\.filter) == ["x"])
        #expect(list.userRules["a b"]?.first?.access == .readwrite)
    }

    @Test(
        "A broken file is refused with the line and the reason",
        arguments: [
            ("topic read a\nbogus line\n", 2),
            ("user\n", 1),
            ("topic read\n", 1),
            ("topic\n", 1),
            ("\n\ntopic read a/#/b\n", 3),
        ]
    )
    func errors(text: String, line: Int) {
        #expect(throws: AccessControlList.ParseError.self) { try AccessControlList(parsing: text) }
        do {
            _ = try AccessControlList(parsing: text)
        } catch {
            #expect(error.line == line)
        }
    }

    @Test("No rule, no access: a client the file does not name is denied everything")
    func defaultDeny() throws {
        let rules = try Self.rules("nobody-known")
        #expect(!rules.allows(.publish, "x"))
        #expect(!rules.allows(.receive, "x"))
        #expect(!rules.allows(.subscribe, "x"))
    }
}
