# Sourced by guest scripts (vm/exec.sh, tests/vm/*.sh); every guest has it at
# /usr/lib/pwru-vm/pwru.sh. The one bash copy of "start pwru-rs and wait for its ready file".

# pwru_start READY ERR TIMEOUT [pwru-rs args...]: starts pwru-rs in the background with
# `--ready-file READY` and its stderr to the file ERR (`-`: this shell's stderr), and waits until READY appears (pwru-rs
# renames it into place complete, so it can be read at once). Sets PWRU_PID. Returns 0 once
# ready; 1 if pwru-rs exited first, 2 if it was not ready after TIMEOUT seconds (it is then
# stopped with SIGINT); PWRU_STATUS then holds its exit status. PWRU_BIN, when set, is the
# binary to start instead (the benchmark runs cilium/pwru, which takes the same two flags).
pwru_start() {
    local ready=$1 err=$2 timeout=$3
    shift 3
    rm -f "$ready"
    if [ "$err" = - ]; then
        "${PWRU_BIN:-pwru-rs}" "$@" --ready-file "$ready" &
    else
        "${PWRU_BIN:-pwru-rs}" "$@" --ready-file "$ready" 2>"$err" &
    fi
    PWRU_PID=$!
    local deadline=$((SECONDS + timeout))
    until [ -e "$ready" ]; do
        # bash reaps its exited children as they exit, so a dead pwru-rs fails `kill -0`.
        if ! kill -0 "$PWRU_PID" 2>/dev/null; then
            wait "$PWRU_PID"
            PWRU_STATUS=$?
            return 1
        fi
        if ((SECONDS >= deadline)); then
            pwru_stop
            return 2
        fi
        sleep 0.01
    done
}

# pwru_stop: SIGINT to the pwru-rs of pwru_start, waits for it; returns its exit status (also in
# PWRU_STATUS).
pwru_stop() {
    kill -INT "$PWRU_PID" 2>/dev/null
    wait "$PWRU_PID"
    PWRU_STATUS=$?
    return $PWRU_STATUS
}
