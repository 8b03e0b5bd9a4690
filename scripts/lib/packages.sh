# Installs Debian packages that are missing, quietly. Sourced by scripts/demo, scripts/test and scripts/bench.
ensure_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What building diskvault needs, and the real tools its tests and demo judge it by.
DISKVAULT_BUILD_PACKAGES=(pkg-config zlib1g-dev libssl-dev libisal-dev libnbd-dev libcurl4-openssl-dev)
DISKVAULT_TOOL_PACKAGES=(curl qemu-utils qemu-system-x86 libnbd-bin python3-libnbd cryptsetup-bin e2fsprogs util-linux fdisk gdisk dosfstools xxd jq strace time xz-utils python3 python3-cryptography openssl)
