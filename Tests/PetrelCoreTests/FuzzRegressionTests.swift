import Foundation
import PetrelFuzzTargets
import Testing

/// Every input of the fuzzers' corpus, and every input that once crashed one (Fuzz/regressions), runs through
/// the same code as the fuzzers (scripts/fuzz.sh) on every test run.
@Suite("Fuzz corpus and regressions")
struct FuzzRegressionTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static func inputs(_ target: String) -> [URL] {
        ["corpus", "regressions"].flatMap { kind -> [URL] in
            let directory = fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
        }
    }

    @Test("The packet decoder takes every saved input without crashing; what it decodes encodes back the same")
    func decoder() throws {
        let inputs = Self.inputs("decoder")
        #expect(!inputs.isEmpty)
        for url in inputs { FuzzTargets.packetDecoder(Array(try Data(contentsOf: url))) }
    }

    @Test("The connection state machine takes every saved packet stream without crashing")
    func connection() throws {
        let inputs = Self.inputs("connection")
        #expect(!inputs.isEmpty)
        for url in inputs { FuzzTargets.connection(Array(try Data(contentsOf: url))) }
    }
}
