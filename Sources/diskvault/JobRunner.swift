import ArgumentParser
import DiskVault

struct LockOptions: ParsableArguments {
    @Option(name: .long, help: "Seconds to wait for a lock another run holds (default 0: fail at once, naming the holder).")
    var lockWait: Double = 0
}

/// Runs a command's work as a recorded job (`Job.run`: the library takes the locks the kind needs); what is
/// worth a warning goes to standard error.
func runJob<T>(_ vault: Vault, kind: JobKind, disk: String?, wait: Double, _ body: (inout JobOutcome) throws -> T) throws -> T {
    try Job.run(vault, kind: kind, disk: disk, lockWait: wait, notice: { Terminal.warning($0) }, body)
}
