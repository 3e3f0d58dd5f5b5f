# Sourced by bench/compare.sh: writes each peer's configuration as the
# walkthrough's ingress (a server certificate per SNI, each host's own
# client CA required, Host routed to the same two backends, 2 workers or
# threads, access logs off) and knows how to start it in the foreground.
#
# Needs from compare.sh: T, PKI, B1 (frontend backend), B2 (inventory
# backend), NGX_PORT, HAP_PORT, CAD_PORT, CAD_HTTP_PORT.

HOSTS=(frontend.foocorp.com inventory.foocorp.com)

srv_cert() { echo "$PKI/$1/3_application/certs/$1.cert.pem"; }
srv_key() { echo "$PKI/$1/3_application/private/$1.key.pem"; }
ca_chain() { echo "$PKI/$1/2_intermediate/certs/ca-chain.cert.pem"; }
backend_of() { if [ "$1" = frontend.foocorp.com ]; then echo "$B1"; else echo "$B2"; fi; }

write_nginx_conf() {
	local d=$T/nginx
	mkdir -p "$d/tmp"
	{
		cat <<EOF
worker_processes 2;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16000; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1;
    upstream frontend { server $B1; keepalive 64; }
    upstream inventory { server $B2; keepalive 64; }
    # reuseport: one accept queue per worker, so the connections spread
    # over both workers (without it one worker may take most of them).
    # Unknown or missing SNI: no certificate, as gatehouse (fail closed).
    server {
        listen 127.0.0.1:$NGX_PORT ssl http2 default_server reuseport;
        ssl_reject_handshake on;
    }
EOF
		for h in "${HOSTS[@]}"; do
			local up=${h%%.*}
			cat <<EOF
    server {
        listen 127.0.0.1:$NGX_PORT ssl http2;
        server_name $h;
        ssl_certificate $(srv_cert "$h");
        ssl_certificate_key $(srv_key "$h");
        ssl_client_certificate $(ca_chain "$h");
        ssl_verify_client on;
        ssl_verify_depth 3;
        location = / {
            proxy_pass http://$up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Client-Cert "Hash=\$ssl_client_fingerprint;Subject=\"\$ssl_client_s_dn\"";
        }
        location / { return 404; }
    }
EOF
		done
		echo "}"
	} >"$d/nginx.conf"
}

write_haproxy_conf() {
	local d=$T/haproxy
	mkdir -p "$d"
	: >"$d/crt-list.txt"
	for h in "${HOSTS[@]}"; do
		cat "$(srv_cert "$h")" "$(srv_key "$h")" >"$d/$h.pem"
		chmod 600 "$d/$h.pem"
		echo "$d/$h.pem [ca-file $(ca_chain "$h") verify required] $h" >>"$d/crt-list.txt"
	done
	cat >"$d/haproxy.cfg" <<EOF
global
    nbthread 2
    # HAProxy reserves two descriptors per connection (maxsock = 2 x
    # maxconn + 17) and refuses to start if they exceed the open-files
    # limit: with the hard limit of 20,000 here, at most 9,991 connections.
    maxconn $(((FD_LIMIT - 17) / 2))
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-bind-curves X25519:P-256
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 300s
frontend ingress
    bind 127.0.0.1:$HAP_PORT ssl crt-list $d/crt-list.txt strict-sni alpn h2,http/1.1
    option forwardfor
    http-request set-var(txn.host) req.hdr(host),field(1,:),lower
    # A connection belongs to the host of its SNI (nginx and gatehouse: 421).
    http-request return status 421 if !{ ssl_fc_sni,lower,strcmp(txn.host) eq 0 }
    http-request set-header X-Forwarded-Client-Cert "Hash=%[ssl_c_sha1,hex];Subject=\"%[ssl_c_s_dn]\""
    use_backend frontend if { var(txn.host) -m str frontend.foocorp.com } { path / }
    use_backend inventory if { var(txn.host) -m str inventory.foocorp.com } { path / }
    default_backend notfound
backend notfound
    http-request return status 404
backend frontend
    server s1 $B1
backend inventory
    server s1 $B2
EOF
}

write_caddyfile() {
	local d=$T/caddy
	mkdir -p "$d"
	{
		cat <<EOF
{
    admin off
    auto_https disable_redirects
    http_port $CAD_HTTP_PORT
    https_port $CAD_PORT
    servers {
        protocols h1 h2
    }
}
EOF
		for h in "${HOSTS[@]}"; do
			cat <<EOF
https://$h:$CAD_PORT {
    bind 127.0.0.1
    tls $(srv_cert "$h") $(srv_key "$h") {
        protocols tls1.2 tls1.3
        curves x25519 secp256r1
        client_auth {
            mode require_and_verify
            trusted_ca_cert_file $(ca_chain "$h")
        }
    }
    @root path /
    handle @root {
        reverse_proxy $(backend_of "$h") {
            header_up X-Forwarded-Client-Cert "Hash={http.request.tls.client.fingerprint};Subject=\"{http.request.tls.client.subject}\""
        }
    }
    handle {
        respond 404
    }
}
EOF
		done
	} >"$d/Caddyfile"
}

# gatehouse's connection limits as nginx's worker_connections 16000: by
# default it keeps (open-files limit - 256) / 2 in all (9,872 here), and
# (d) at 10,000 idle connections would measure its shedding.
GH_LIMITS=(--max-connections 16000 --max-connections-total 16000)

# Starts proxy $1 in the foreground of a background job; sets PROXY_PID.
launch_proxy() {
	case $1 in
	gatehouse)
		RUST_LOG=warn "$G" --store "dir:$T/store" run "${GH_LIMITS[@]}" \
			--listen "443=127.0.0.1:$GH_PORT" --admin "127.0.0.1:$GH_ADMIN" \
			>"$T/logs/gatehouse.log" 2>&1 &
		;;
	gatehouse-w[0-9]*) # (h): the same gatehouse with --workers N
		RUST_LOG=warn "$G" --store "dir:$T/store" run --workers "${1#gatehouse-w}" "${GH_LIMITS[@]}" \
			--listen "443=127.0.0.1:$GH_PORT" --admin "127.0.0.1:$GH_ADMIN" \
			>"$T/logs/$1.log" 2>&1 &
		;;
	gatehouse-base)
		RUST_LOG=warn "$BASE" --store "dir:$T/store" run "${GH_LIMITS[@]}" \
			--listen "443=127.0.0.1:$GHB_PORT" --admin "127.0.0.1:$GHB_ADMIN" \
			>"$T/logs/gatehouse-base.log" 2>&1 &
		;;
	nginx)
		nginx -c "$T/nginx/nginx.conf" -p "$T/nginx" >"$T/logs/nginx.log" 2>&1 &
		;;
	haproxy)
		haproxy -db -f "$T/haproxy/haproxy.cfg" >"$T/logs/haproxy.log" 2>&1 &
		;;
	caddy)
		HOME=$T/caddy XDG_DATA_HOME=$T/caddy/data XDG_CONFIG_HOME=$T/caddy/config GOMAXPROCS=2 \
			caddy run --config "$T/caddy/Caddyfile" --adapter caddyfile \
			>"$T/logs/caddy.log" 2>&1 &
		;;
	esac
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
}

port_of() {
	case $1 in
	gatehouse | gatehouse-w[0-9]*) echo "$GH_PORT" ;;
	gatehouse-base) echo "$GHB_PORT" ;;
	nginx) echo "$NGX_PORT" ;;
	haproxy) echo "$HAP_PORT" ;;
	caddy) echo "$CAD_PORT" ;;
	esac
}

version_of() {
	case $1 in
	gatehouse) echo "gatehouse $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($(rustc --version | cut -d' ' -f2), rustls 0.23 + aws-lc-rs)" ;;
	gatehouse-base) echo "gatehouse $("$BASE" --version 2>/dev/null | cut -d' ' -f2) (the baseline: $BASE)" ;;
	nginx) nginx -V 2>&1 | awk '/nginx version/{print $3} /running with/{print "(" $0 ")"}' | tr '\n' ' ' ;;
	haproxy) haproxy -vv 2>/dev/null | awk 'NR==1{print $1, $3} /Running on: OpenSSL/{sub(/^ */, ""); print "(" $0 ")"}' | tr '\n' ' ' ;;
	caddy) echo "caddy $(caddy version | cut -d' ' -f1) ($(caddy build-info 2>/dev/null | awk '$1 == "go" {print $2}'), Go crypto/tls)" ;;
	esac
}
