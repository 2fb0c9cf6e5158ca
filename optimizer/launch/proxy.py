"""One port in front of several engine processes: an nginx configuration.

TensorRT-LLM and llama.cpp have no data-parallel mode, so an instance running several replicas of one
deployment runs one engine process per replica; an instance running two deployments of one workload
runs two engines. SkyServe reaches one port per replica, so nginx listens there and spreads requests
over the processes, each on its own backend port, least connections first (weighted by capacity);
responses are streamed (no buffering) and long generations keep the connection (read timeout one
hour). Only integers reach the text: nothing from workload files.
"""

from __future__ import annotations

BACKEND_BASE = 20000  # backend ports: BACKEND_BASE + 64 × (listen port mod 1000) + replica
BACKENDS_PER_PORT = 64
INSTALL = "sudo apt-get install -y nginx"


def backend_port(listen: int, i: int) -> int:
    """Port of the i-th engine process behind the proxy on ``listen``."""
    if not 0 <= i < BACKENDS_PER_PORT:
        raise ValueError(f"at most {BACKENDS_PER_PORT} processes behind one port, got replica {i}")
    return BACKEND_BASE + BACKENDS_PER_PORT * (listen % 1000) + i


def config_name(listen: int) -> str:
    return f"gpuplan-nginx-{listen}.conf"


def nginx_config(listen: int, backends: list[tuple[int, int]]) -> str:
    """An nginx configuration for (port, weight) backends, run as the login user (pid, logs and buffers
    under /tmp)."""
    servers = "".join(f"    server 127.0.0.1:{port}" + (f" weight={w}" if w != 1 else "") + ";\n"
                      for port, w in backends)
    return (f"pid /tmp/gpuplan-nginx-{listen}.pid;\n"
            f"error_log /tmp/gpuplan-nginx-{listen}.log;\n"
            "events {}\n"
            "http {\n"
            "  access_log off;\n"
            f"  client_body_temp_path /tmp/gpuplan-nginx-{listen}-body;\n"
            f"  proxy_temp_path /tmp/gpuplan-nginx-{listen}-proxy;\n"
            "  upstream engines {\n"
            "    least_conn;\n"
            f"{servers}"
            "  }\n"
            "  server {\n"
            f"    listen {listen};\n"
            "    location / {\n"
            "      proxy_pass http://engines;\n"
            "      proxy_http_version 1.1;\n"
            "      proxy_buffering off;\n"
            "      proxy_read_timeout 3600s;\n"
            "    }\n"
            "  }\n"
            "}\n")


def start_lines(listen: int, backends: list[tuple[int, int]]) -> list[str]:
    """Shell lines that write the configuration (quoted heredoc) and start nginx in the background."""
    name = config_name(listen)
    return [f"cat > {name} <<'GPUPLAN_EOF'\n{nginx_config(listen, backends)}GPUPLAN_EOF",
            f'nginx -c "$PWD/{name}"']
