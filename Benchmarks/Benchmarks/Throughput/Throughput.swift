import Benchmark
import DiskVault
let benchmarks: @Sendable () -> Void = {}
