node_name = "web-1"
node_id = "8BA7B810-9DAD-11D1-80B4-00C04FD430C8"
datacenter = "East-1"
data_dir = "/var/lib/cairn"
server = true
bootstrap_expect = 3
bind_addr = "10.0.0.5"
client_addr = "127.0.0.1 10.0.0.5"
advertise_addr_wan = "203.0.113.5"

addresses {
  http = "0.0.0.0"
  dns  = "127.0.0.1"
}

ports {
  http     = 8080
  https    = 8501
  dns      = 8653
  grpc     = 8502
  serf_wan = -1
}

retry_join     = ["10.0.0.6", "10.0.0.7"]
retry_interval = "15s"
retry_max      = 5
start_join     = ["10.0.0.8"]
log_level      = "DEBUG"
log_json       = true

node_meta {
  rack = "r1"
  zone = "a"
}

performance {
  raft_multiplier  = 2
  leave_drain_time = "3s"
}

leave_on_terminate         = true
enable_local_script_checks = true

limits {
  kv_max_value_size         = 1048576
  txn_max_req_len           = 65536
  http_max_conns_per_client = 50
}

check_update_interval = "1m"
discard_check_output  = true

acl {
  enabled                  = true
  default_policy           = "deny"
  down_policy              = "async-cache"
  enable_token_persistence = true
  tokens {
    initial_management = "root"
    agent              = "agent-tok"
    default            = "anon"
    agent_recovery     = "recover"
  }
}

domain     = "cairn"
alt_domain = "example.internal."
recursors  = ["8.8.8.8", "1.1.1.1:53"]

dns_config {
  allow_stale = false
  node_ttl    = "10s"
  service_ttl {
    "*" = "5s"
    web = "30s"
  }
  udp_answer_limit = 6
}

ui_config {
  enabled = true
}

autopilot {
  cleanup_dead_servers = false
  min_quorum           = 3
}

raft_snapshot_threshold = 8192
raft_snapshot_interval  = "1m"
reconnect_timeout       = "8h"
rejoin_after_leave      = true

service {
  name = "web"
  port = 80
  tags = ["v1", "primary"]
  meta {
    version = "1.2"
  }
  weights {
    passing = 10
    warning = 1
  }
  check {
    http     = "http://localhost/health"
    interval = "10s"
    header {
      Host = ["web"]
    }
  }
}

services = [
  {
    name = "db"
    port = 5432
    checks = [
      { tcp = "localhost:5432", interval = "5s" },
      { ttl = "30s" },
    ]
  },
]

checks = [
  {
    id       = "mem"
    args     = ["/bin/check_mem", "-w", "90"]
    interval = "30s"
  },
]

watches = [
  {
    type         = "key"
    key          = "foo"
    handler_type = "http"
    http_handler_config {
      path   = "http://localhost/w"
      method = "POST"
    }
  },
]
