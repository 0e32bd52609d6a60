# Sourced by the project's scripts: shared build directory outside the clone (so CI and every checkout reuse
# one dependency build), and the system packages the build and the reports need.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/streamrec/target}"
mkdir -p "$CARGO_TARGET_DIR"

streamrec_apt_install() {
    local missing=()
    command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing system packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}
