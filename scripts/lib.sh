# Sourced by the other scripts, not run.

# step LABEL CMD...: says what is being done, runs it, then says how long it
# took. A first run downloads and compiles for minutes; a newcomer watching it
# should see that it is moving, not guess whether it hung.
step() {
  local label=$1 t0=$SECONDS
  shift
  echo "$label…"
  "$@"
  echo "  done in $((SECONDS - t0)) s"
}
