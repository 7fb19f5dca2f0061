#!/usr/bin/env bash
# Runs a local edgefleet on this machine: installs the dependencies, builds a
# Release build in build/, starts a mosquitto broker and edgefleet-server on
# 127.0.0.1 (both as children of this script), initialises the data directory
# on the first run, prints the URL and the admin token, and stops both on
# Ctrl-C. See docs/quickstart.md.
#
# The broker runs mosquitto's dynamic-security plugin (deploy/mosquitto/
# dynsec.conf): no anonymous clients, and every client may do only what its
# roles allow. The plugin's admin client is made on the first run (its
# password in DATA_DIR/mosquitto/admin.password); on every run the script
# gives the server its own client, edgefleet-server, with a fresh password,
# and the server gives each device its own client at enrollment.
#
# Environment:
#   EF_DATA_DIR   data directory (default: edgefleet-data/ in the repository)
#   EF_HTTP_PORT  server port (default: 8080 if free, else any free port)
#   EF_MQTT_PORT  broker port (default: any free port)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=/usr/bin/python3
broker_pid=
server_pid=
server_mqtt_password=

die() {
  echo "quickstart: $*" >&2
  exit 1
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  "$python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# port_is_free PORT: succeeds when PORT on 127.0.0.1 can be bound (as a server
# binds it, with SO_REUSEADDR, so a port in TIME_WAIT counts as free).
port_is_free() {
  "$python" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()' "$1"
}

# valid_port VALUE: succeeds when VALUE is a TCP port number.
valid_port() {
  [[ "$1" =~ ^[0-9]+$ ]] && (("$1" >= 1 && "$1" <= 65535))
}

# pick_ports: sets http_port and mqtt_port from the environment or free ports.
pick_ports() {
  if [[ -n "${EF_HTTP_PORT:-}" ]]; then
    valid_port "$EF_HTTP_PORT" || die "EF_HTTP_PORT=$EF_HTTP_PORT is not a port"
    port_is_free "$EF_HTTP_PORT" || die "EF_HTTP_PORT=$EF_HTTP_PORT is in use"
    http_port=$EF_HTTP_PORT
  elif port_is_free 8080; then
    http_port=8080
  else
    http_port=$(free_port)
  fi
  if [[ -n "${EF_MQTT_PORT:-}" ]]; then
    valid_port "$EF_MQTT_PORT" || die "EF_MQTT_PORT=$EF_MQTT_PORT is not a port"
    port_is_free "$EF_MQTT_PORT" || die "EF_MQTT_PORT=$EF_MQTT_PORT is in use"
    mqtt_port=$EF_MQTT_PORT
  else
    mqtt_port=$(free_port)
    # Two free_port calls may return the same port if nothing bound it between.
    while [[ "$mqtt_port" == "$http_port" ]]; do
      mqtt_port=$(free_port)
    done
  fi
  [[ "$mqtt_port" != "$http_port" ]] || die "EF_HTTP_PORT and EF_MQTT_PORT are the same port"
}

# wait_tcp PORT PID SECONDS: waits until something accepts on 127.0.0.1:PORT,
# failing early if process PID has exited.
wait_tcp() {
  local port=$1 pid=$2 tries=$(($3 * 10))
  while ((tries-- > 0)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# wait_healthz URL PID SECONDS: waits until URL/healthz answers 200.
wait_healthz() {
  local url=$1 pid=$2 tries=$(($3 * 10))
  while ((tries-- > 0)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if curl -fsS -o /dev/null --max-time 1 "$url/healthz" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# stop_child PID NAME: asks a child to stop, then forces it after 10 s.
stop_child() {
  local pid=$1 name=$2 tries=100
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  while ((tries-- > 0)) && kill -0 "$pid" 2>/dev/null; do
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "quickstart: $name did not stop in 10 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# cleanup: stops the demo devices, then the server (it publishes to the
# broker), then the broker.
cleanup() {
  trap - INT TERM EXIT
  if [[ -n "$server_pid$broker_pid" ]]; then
    echo "quickstart: stopping"
  fi
  local pid
  for pid in "${demo_pids[@]}"; do
    stop_child "$pid" demo-device
  done
  demo_pids=()
  stop_child "$server_pid" edgefleet-server
  server_pid=
  stop_child "$broker_pid" mosquitto
  broker_pid=
}

# render_broker_config TEMPLATE OUT: fills in @PORT@, @DATA_DIR@, @USER@ and
# @DYNSEC_PLUGIN@.
render_broker_config() {
  local esc_dir esc_user esc_plugin
  # Escape the characters sed treats specially in a replacement.
  esc_dir=$(printf '%s' "$data_dir" | sed 's/[\\|&]/\\&/g')
  esc_user=$(id -un | sed 's/[\\|&]/\\&/g')
  esc_plugin=$(dynsec_plugin | sed 's/[\\|&]/\\&/g')
  sed -e "s|@PORT@|$mqtt_port|g" -e "s|@DATA_DIR@|$esc_dir|g" \
      -e "s|@USER@|$esc_user|g" -e "s|@DYNSEC_PLUGIN@|$esc_plugin|g" "$1" >"$2.tmp"
  mv "$2.tmp" "$2"
}

# random_secret: prints 256 random bits as hex (safe in a URL and in JSON).
random_secret() {
  od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

# dynsec_plugin: prints the path of mosquitto's dynamic-security plugin.
dynsec_plugin() {
  local p
  for p in /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so \
    /usr/local/lib/mosquitto_dynamic_security.so; do
    if [[ -e "$p" ]]; then
      printf '%s\n' "$p"
      return 0
    fi
  done
  die "mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so) is not installed"
}

# init_broker_security: on the first run, writes the plugin's state file
# DATA_DIR/mosquitto/dynsec.json with one client, admin, allowed to manage
# the plugin; its password is kept in DATA_DIR/mosquitto/admin.password
# (mode 0600), the state file holds only a salted hash of it.
init_broker_security() {
  local dir=$data_dir/mosquitto password
  mkdir -p "$dir"
  chmod 0700 "$dir"
  if [[ -e "$dir/dynsec.json" ]]; then
    [[ -r "$dir/admin.password" ]] ||
      die "$dir/admin.password is missing; delete $dir/dynsec.json to make a new broker admin"
    return 0
  fi
  password=$(random_secret)
  (umask 077 && printf '%s\n' "$password" >"$dir/admin.password")
  (umask 077 && mosquitto_ctrl dynsec init "$dir/dynsec.json" admin "$password" >/dev/null) ||
    die "mosquitto_ctrl dynsec init $dir/dynsec.json failed"
}

# dynsec_call: sends the dynamic-security commands read on stdin (a JSON
# array) to the broker as its admin client, and fails unless every one
# succeeded (deleting what does not exist counts as success). Secrets travel
# on stdin and in files, never on a command line.
dynsec_call() {
  "$python" -c '
import json, os, sys, threading
import paho.mqtt.client as mqtt

port, password_file = int(sys.argv[1]), sys.argv[2]
commands = json.load(sys.stdin)
for i, c in enumerate(commands):
    c["correlationData"] = "quickstart-%d" % i
answer, done = {}, threading.Event()

def on_connect(client, userdata, flags, rc):
    if rc != 0:
        answer["error"] = "the broker refused the admin client (%s)" % mqtt.connack_string(rc)
        done.set()
    else:
        client.subscribe("$CONTROL/dynamic-security/v1/response", 1)

def on_subscribe(client, userdata, mid, granted):
    client.publish("$CONTROL/dynamic-security/v1", json.dumps({"commands": commands}), 1)

def on_message(client, userdata, msg):
    answer["responses"] = json.loads(msg.payload).get("responses", [])
    done.set()

client = mqtt.Client(client_id="edgefleet-quickstart-%d" % os.getpid(), protocol=mqtt.MQTTv311)
with open(password_file) as f:
    client.username_pw_set("admin", f.read().strip())
client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
client.connect("127.0.0.1", port, 30)
client.loop_start()
answered = done.wait(10)
client.disconnect()
client.loop_stop()
if not answered:
    sys.exit("no answer from the dynamic-security plugin")
if "error" in answer:
    sys.exit(answer["error"])
failed = ["%s: %s" % (r.get("command"), r["error"]) for r in answer["responses"]
          if "error" in r and not (str(r.get("command")).startswith("delete")
                                   and r["error"].endswith(" not found"))]
if failed or len(answer["responses"]) != len(commands):
    sys.exit("dynamic-security: " + ("; ".join(failed) or "answers missing"))
' "$mqtt_port" "$data_dir/mosquitto/admin.password"
}

# provision_server_client: (re)makes the server's broker client,
# edgefleet-server, with a new password in server_mqtt_password, and a role
# with what the server needs: manage the plugin, read what devices say,
# write their desired state and commands and the events. Also makes the
# plugin's defaults deny what no role allows, receiving included.
provision_server_client() {
  local p=publishClientSend r=publishClientReceive s=subscribePattern acls=() acl sep=
  local devices=edgefleet/v1/devices/+ topic
  server_mqtt_password=$(random_secret)
  # The server reads it from this file: a password on its command line would
  # show in ps.
  (umask 077 && printf '%s\n' "$server_mqtt_password" >"$data_dir/mosquitto/server.password")
  acls+=("$p \$CONTROL/dynamic-security/v1")
  acls+=("subscribeLiteral \$CONTROL/dynamic-security/v1/response")
  acls+=("$r \$CONTROL/dynamic-security/v1/response")
  for topic in reported status telemetry; do
    acls+=("$s $devices/$topic" "$r $devices/$topic")
  done
  acls+=("$p $devices/desired" "$p $devices/cmd" "$p edgefleet/v1/events/#")
  {
    printf '[{"command":"setDefaultACLAccess","acls":['
    printf '{"acltype":"publishClientSend","allow":false},'
    printf '{"acltype":"publishClientReceive","allow":false},'
    printf '{"acltype":"subscribe","allow":false},{"acltype":"unsubscribe","allow":true}]},'
    printf '{"command":"deleteClient","username":"edgefleet-server"},'
    printf '{"command":"deleteRole","rolename":"edgefleet-server"},'
    printf '{"command":"createRole","rolename":"edgefleet-server","acls":['
    for acl in "${acls[@]}"; do
      printf '%s{"acltype":"%s","topic":"%s","allow":true}' "$sep" "${acl%% *}" "${acl#* }"
      sep=,
    done
    printf ']},{"command":"createClient","username":"edgefleet-server","password":"%s",' \
      "$server_mqtt_password"
    printf '"roles":[{"rolename":"edgefleet-server"}]}]\n'
  } | dynsec_call || die "could not make the server's broker client (log: $data_dir/mosquitto/mosquitto.log)"
}

# start_demo_devices: a live fleet on first run. Trains a FANN network on
# libfann-doc's thyroid set (once), registers it with reference data, enrolls
# EF_DEMO_DEVICES (default 3) agents with their own data directories under
# DATA_DIR/devices/, assigns the model to ring default, and feeds each agent
# real thyroid inputs through its inference socket so telemetry has traffic.
# EF_DEMO_DEVICES=0 starts none.
demo_pids=()
datasets=/usr/share/doc/libfann-dev/examples/datasets
start_demo_devices() {
  local n=${EF_DEMO_DEVICES:-3} i id dir token cli=("$bin/edgefleet" --server "$server_url" --token "$admin_token")
  ((n > 0)) || return 0
  [[ -n "$admin_token" ]] || { echo "quickstart: no admin token; no demo devices" >&2; return 0; }
  mkdir -p "$data_dir/devices"
  if ! "${cli[@]}" model show thyroid >/dev/null 2>&1; then
    # The product's own trainer: the manifest gets the drift baselines, golden
    # vectors and holdout metrics that the monitoring page shows.
    "$bin/edgefleet-train" --dataset "$datasets/thyroid.train" --out "$data_dir/devices/train-v1" \
      --hidden 8 --epochs 100 --log-level warn >/dev/null || die "could not train the demo model"
    "$python" - "$data_dir/devices/train-v1/meta.json" >"$data_dir/devices/thyroid.meta.json" <<'PY' ||
import json, sys
meta = json.load(open(sys.argv[1]))
meta.update(labels=["hyper", "hypo", "normal"], description="demo: thyroid (PROBEN1)")
print(json.dumps(meta))
PY
      die "could not write the demo model's meta"
    "${cli[@]}" model push thyroid "$data_dir/devices/train-v1/model.net" \
      --meta "$data_dir/devices/thyroid.meta.json" >/dev/null || die "could not register the demo model"
    # Watch it: drift across the demo ring raises an alert (and a retrain event).
    "${cli[@]}" trigger create --model thyroid --metric drift --above 0.25 --window 300 \
      --action retrain >/dev/null || echo "quickstart: could not create the demo trigger" >&2
  fi
  for ((i = 1; i <= n; i++)); do
    id=demo-$i
    dir=$data_dir/devices/$id
    token=
    if [[ ! -e "$dir/identity.json" ]]; then
      token=$("${cli[@]}" --json enroll-token create | "$python" -c 'import json,sys; print(json.load(sys.stdin)["token"])') ||
        die "could not make an enrollment token"
    fi
    "$bin/edgefleet-agent" --server "$server_url" --mqtt "mqtt://127.0.0.1:$mqtt_port" \
      --data-dir "$dir" --device-id "$id" ${token:+--enroll-token "$token"} --tag demo=yes \
      --metrics-interval 30 >>"$data_dir/devices/$id.log" 2>&1 &
    demo_pids+=($!)
  done
  # Assigning is idempotent: devices already on thyroid@latest stay as they are.
  local latest
  latest=$("${cli[@]}" --json model show thyroid | "$python" -c 'import json,sys; print(json.load(sys.stdin)["latest_version"])')
  sleep 1
  "${cli[@]}" assign "thyroid@$latest" --ring default >/dev/null ||
    echo "quickstart: could not assign the demo model yet; see the devices' logs" >&2
  feed_demo_devices "$n" &
  demo_pids+=($!)
}

# feed_demo_devices N: EF_DEMO_RATE (default 5) requests a second to each
# device over one connection to its inference socket, cycling through the
# thyroid test rows (inputs only), until the script stops. With 30 s windows a
# window holds ~150 inputs: enough for a PSI that is not mostly sampling noise.
feed_demo_devices() {
  # exec: the PID the script keeps (and stops) is the feeder's own.
  exec "$python" - "$1" "${EF_DEMO_RATE:-5}" "$data_dir/devices" "$datasets/thyroid.test" <<'PY'
import json, socket, sys, time
n, rate, devices, data = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
lines = open(data).read().split("\n")[1:]
rows = [[float(v) for v in lines[i].split()] for i in range(0, len(lines) - 1, 2)][:500]
conns = [None] * n
i = 0
while True:
    for d in range(n):
        try:
            if conns[d] is None:
                conns[d] = socket.socket(socket.AF_UNIX)
                conns[d].connect(f"{devices}/demo-{d + 1}/infer.sock")
                conns[d].settimeout(5)
            conns[d].sendall((json.dumps({"input": rows[i % len(rows)]}) + "\n").encode())
            conns[d].recv(65536)
        except OSError:  # not serving yet, or restarted: try again next round
            conns[d] = None
    i += 1
    time.sleep(1 / rate)
PY
}

# build_release: installs the dashboard's npm packages and builds everything
# in build/ (the tests too: their helper build/test-bin/ef-train-fixture makes
# a FANN model to push).
build_release() {
  # The dashboard's uPlot, which the server serves from node_modules/.
  (cd "$root" && npm ci --no-audit --no-fund >/dev/null) || die "npm ci failed"
  cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DEF_TESTS=ON >/dev/null
  cmake --build "$root/build" -j"$(nproc)"
  bin=$root/build/bin
  [[ -x "$bin/edgefleet-server" ]] || die "the build made no $bin/edgefleet-server"
}

# init_once: initialises the data directory on the first run and keeps the
# admin token in DATA_DIR/admin.token (mode 0600) so later runs can print it.
init_once() {
  local out
  if [[ -e "$data_dir/edgefleet.db" ]]; then
    if [[ -r "$data_dir/admin.token" ]]; then
      admin_token=$(<"$data_dir/admin.token")
    else
      admin_token=
    fi
    return 0
  fi
  out=$("$bin/edgefleet-server" init --data-dir "$data_dir") ||
    die "edgefleet-server init --data-dir $data_dir failed"
  admin_token=$(printf '%s\n' "$out" | tail -n 1)
  [[ -n "$admin_token" ]] || die "edgefleet-server init printed no admin token"
  (umask 077 && printf '%s\n' "$admin_token" >"$data_dir/admin.token")
  chmod 0600 "$data_dir/admin.token"
}

# start_broker: starts mosquitto with the dynamic-security plugin and gives
# the server its broker client.
start_broker() {
  local dir=$data_dir/mosquitto
  init_broker_security
  render_broker_config "$root/deploy/mosquitto/dynsec.conf" "$dir/mosquitto.conf"
  mosquitto -c "$dir/mosquitto.conf" >>"$dir/mosquitto.log" 2>&1 &
  broker_pid=$!
  wait_tcp "$mqtt_port" "$broker_pid" 10 || {
    tail -n 20 "$dir/mosquitto.log" >&2 || true
    die "mosquitto did not start on 127.0.0.1:$mqtt_port (log: $dir/mosquitto.log)"
  }
  provision_server_client
}

start_server() {
  # The server manages the device identities as edgefleet-server.
  "$bin/edgefleet-server" serve --data-dir "$data_dir" --listen "127.0.0.1:$http_port" \
    --mqtt "mqtt://edgefleet-server@127.0.0.1:$mqtt_port" \
    --mqtt-password-file "$data_dir/mosquitto/server.password" \
    >>"$data_dir/server.log" 2>&1 &
  server_pid=$!
  wait_healthz "$server_url" "$server_pid" 30 || {
    tail -n 20 "$data_dir/server.log" >&2 || true
    die "edgefleet-server did not answer $server_url/healthz (log: $data_dir/server.log)"
  }
}

print_banner() {
  local token_line
  if [[ -n "$admin_token" ]]; then
    token_line=$admin_token
  else
    token_line="(unknown: $data_dir/admin.token is missing; create one with the CLI from an admin token)"
  fi
  cat <<EOM

edgefleet is running.
  server:      $server_url   (log: $data_dir/server.log)
  broker:      mqtt://127.0.0.1:$mqtt_port   (log: $data_dir/mosquitto/mosquitto.log)
               no anonymous clients; each device gets its own credentials at enrollment;
               broker admin: user admin, password in $data_dir/mosquitto/admin.password
  data dir:    $data_dir
  devices:     ${#demo_pids[@]} demo process(es): agents demo-1..demo-${EF_DEMO_DEVICES:-3} serving thyroid,
               fed real inputs (logs: $data_dir/devices/*.log)
  admin token: $token_line

Try, in another shell:
  export PATH="$bin:\$PATH"
  export EDGEFLEET_SERVER=$server_url
  export EDGEFLEET_TOKEN=\$(cat '$data_dir/admin.token')
  edgefleet model list
  edgefleet device list
  curl -s $server_url/healthz
  mosquitto_sub -h 127.0.0.1 -p $mqtt_port -u admin -P "\$(cat '$data_dir/mosquitto/admin.password')" -t 'edgefleet/v1/#' -v

  edgefleet-agent infer --data-dir '$data_dir/devices/demo-1' '[0.53,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0.0043,0.015,0.094,0.088,0.107]'

Press Ctrl-C to stop the devices, the server and the broker.
EOM
}

main() {
  command -v "$python" >/dev/null || die "$python is missing"
  "$root/deploy/install-deps.sh"
  build_release

  data_dir=${EF_DATA_DIR:-$root/edgefleet-data}
  # A new data directory is private: it holds the keys and the admin token.
  if [[ ! -d "$data_dir" ]]; then
    mkdir -p "$data_dir"
    chmod 0700 "$data_dir"
  fi
  data_dir=$(cd "$data_dir" && pwd)

  # One quickstart per data directory: the lock is held by this script and
  # its children for as long as any of them runs.
  exec 9>"$data_dir/.quickstart.lock"
  flock -n 9 || die "another quickstart is running on $data_dir"

  pick_ports
  server_url=http://127.0.0.1:$http_port

  trap 'cleanup; exit 130' INT
  trap 'cleanup; exit 143' TERM
  trap cleanup EXIT

  init_once
  start_broker
  start_server
  start_demo_devices
  print_banner

  # Returns when either child exits or a signal arrives (the trap runs then).
  local status=0
  wait -n "$broker_pid" "$server_pid" || status=$?
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "quickstart: edgefleet-server exited; see $data_dir/server.log" >&2
  else
    echo "quickstart: mosquitto exited; see $data_dir/mosquitto/mosquitto.log" >&2
  fi
  exit $((status == 0 ? 1 : status))
}

# Sourcing the file (for tests) defines the functions without running anything.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
