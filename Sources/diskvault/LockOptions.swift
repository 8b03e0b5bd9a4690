import ArgumentParser
import DiskVault

struct LockOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Seconds to wait for a lock another run holds; 0 fails at once, naming the holder.", valueName: "seconds"))
    var lockWait: Double = 0
}

extension LockOptions {
    /// How the library runs the command's job: waiting this long for locks, warnings to standard error.
    var control: JobControl { JobControl(lockWait: lockWait, notice: { Terminal.warning($0) }) }
}
