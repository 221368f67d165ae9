import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Memory and CPU time of a process, read from /proc (Linux only; elsewhere `read` returns nil).
struct ProcessSample: Sendable {
    /// Resident set size, KiB (VmRSS).
    var residentKiB: Int
    /// Peak resident set size, KiB (VmHWM).
    var peakResidentKiB: Int
    /// User plus system CPU time, seconds.
    var cpuSeconds: Double

    static func read(pid: Int32) -> ProcessSample? {
        read(path: "/proc/\(pid)")
    }

    static func readSelf() -> ProcessSample? {
        read(path: "/proc/self")
    }

    private static func read(path: String) -> ProcessSample? {
        guard let status = try? String(contentsOfFile: path + "/status", encoding: .utf8),
            let stat = try? String(contentsOfFile: path + "/stat", encoding: .utf8)
        else { return nil }
        var rss = 0
        var hwm = 0
        for line in status.split(separator: "\n") {
            if line.hasPrefix("VmRSS:") { rss = kibibytes(line) }
            if line.hasPrefix("VmHWM:") { hwm = kibibytes(line) }
        }
        // The command name in field 2 may contain spaces: fields are counted after its closing parenthesis.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(clockTicksPerSecond)
        return ProcessSample(residentKiB: rss, peakResidentKiB: hwm, cpuSeconds: (user + system) / ticks)
    }

    private static func kibibytes(_ line: Substring) -> Int {
        line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    }

    private static var clockTicksPerSecond: Int {
        #if canImport(Glibc)
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? ticks : 100
        #else
        return 100
        #endif
    }
}

/// Raises this process's open file limit to its hard limit, so that it can hold as many connections as allowed.
/// Returns the soft limit in force afterwards.
@discardableResult
func raiseOpenFileLimit() -> Int {
    #if canImport(Glibc)
    var limit = rlimit()
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    guard getrlimit(resource, &limit) == 0 else { return 0 }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(resource, &limit)
        _ = getrlimit(resource, &limit)
    }
    return Int(clamping: limit.rlim_cur)
    #else
    return 0
    #endif
}
