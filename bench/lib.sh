# Shared by run.sh and profile.sh: tools the bench needs, and the cleanup trap.

# Installs what is missing (nginx always, plus the packages named) with apt-get.
need_tools() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    [ -x /usr/bin/time ] || missing+=(time)
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
            echo "error: the bench needs ${missing[*]}; install them and run again" >&2
            exit 2
        fi
        echo "installing ${missing[*]} ..." >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        # The package may start a system nginx on port 80; the bench runs its own.
        if [[ " ${missing[*]} " == *" nginx "* ]] && command -v service >/dev/null 2>&1; then
            service nginx stop >/dev/null 2>&1 || true
        fi
    fi
    export PATH="$PATH:/usr/sbin"
}

# The bench's own nginx, should the driver have died without stopping it.
stop_leftovers() {
    local pidfile=bench/.work/nginx/nginx.pid
    if [ -s "$pidfile" ]; then
        local pid
        pid=$(cat "$pidfile")
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "bench/.work/nginx"; then
            kill -QUIT "$pid" 2>/dev/null || true
        fi
    fi
}
