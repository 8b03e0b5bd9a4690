/// What the volume boot record says: which BitLocker variant, the sector size, where the metadata copies are.
struct BitLockerVolumeHeader {
    var isVista = false
    var isToGo = false
    var bytesPerSector = 512
    var metadataOffsets: [UInt64] = []
    var warnings: [String] = []

    /// Nil when the boot record has no BitLocker signature.
    init?(_ boot: BitLockerFields) throws(DiskVaultError) {
        if boot.hasPrefix(BitLockerHeader.signature, at: 3) {
            isVista = boot.hasPrefix(BitLockerHeader.vistaBootCode, at: 0)
        } else if boot.hasPrefix(BitLockerHeader.toGoSignature, at: 3), boot.count >= 440,
                  BitLockerHeader.identifiers.contains(try boot.guid(424, "To Go BitLocker identifier")) {
            isToGo = true
        } else {
            return nil
        }
        let sectorSize = Int(try boot.u16(11, "bytes per sector"))
        // cryptsetup reads 0 as 512; anything else must be a real sector size.
        bytesPerSector = sectorSize == 0 ? 512 : sectorSize
        guard [512, 1024, 2048, 4096].contains(bytesPerSector) else {
            throw boot.corrupt("BitLocker volume header: bytes per sector \(sectorSize) is not a sector size")
        }
        if isVista {
            let clusterSize = UInt64(bytesPerSector) * UInt64(try boot.u8(13, "sectors per cluster"))
            let cluster = try boot.u64(56, "first FVE metadata cluster")
            let (offset, overflow) = cluster.multipliedReportingOverflow(by: clusterSize)
            guard clusterSize > 0, !overflow else {
                throw boot.corrupt("BitLocker volume header: first FVE metadata cluster \(cluster) "
                    + "× cluster size \(clusterSize) is not an offset")
            }
            metadataOffsets = [offset]
            return
        }
        let base = isToGo ? 424 : 160
        if !isToGo {
            let identifier = try boot.guid(base, "BitLocker identifier")
            if !BitLockerHeader.identifiers.contains(identifier) {
                warnings.append("BitLocker identifier \(identifier) is not one known")
            }
        }
        for i in 0..<3 {
            metadataOffsets.append(try boot.u64(base + 16 + 8 * i, "FVE metadata block \(i + 1) offset"))
        }
    }
}
