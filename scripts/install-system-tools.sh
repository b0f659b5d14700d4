#!/usr/bin/env bash
# Installs the real peers the test suite uses (Postfix's smtp-source/smtp-sink, swaks,
# tshark, sqlite3; systemd-analyze and logrotate for packaging/; a system Python for the
# sendmail tests; NSD, an authoritative DNS server serving PX records; Prometheus; Chromium;
# PostgreSQL; Dovecot's LMTP server) when they are missing.
# Postfix itself is installed unconfigured, not started.
set -euo pipefail
need=()
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
[ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v swaks >/dev/null 2>&1 || need+=(swaks)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v tshark >/dev/null 2>&1 || need+=(tshark)
# NSD serves the RFC 2163 PX records of tests/test_px_lookup.py from zone files, started by
# the tests on a loopback port (its own service is not used).
[ -x /usr/sbin/nsd ] || need+=(nsd)
# systemd-analyze verifies packaging/systemd/waypost.service (nothing is started).
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || need+=(logrotate)
# The sendmail tests run waypost-sendmail as `nobody`, who cannot enter /root where this
# machine's own Python lives: Debian's Python of the same version (3.11 on Debian 12).
[ -x /usr/bin/python3.11 ] || need+=(python3.11-minimal)
# Prometheus scrapes a running Waypost in tests/interop/test_metrics_prometheus.py.
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
# The console's browser tests drive Debian's Chromium headless with Playwright.
[ -x /usr/bin/chromium ] || need+=(chromium)
# The PostgreSQL store's tests make their own server (initdb in a temporary directory, as
# `postgres`); the package's own cluster is not wanted (see createcluster.conf below).
[ -x /usr/bin/pg_config ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# LMTP delivery is tested against Dovecot's LMTP server, started by the test.
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/lmtp ] || need+=(dovecot-core dovecot-lmtpd)
# swaks needs Net::SSLeay for --tls; it is only a recommendation of the swaks package.
perl -MNet::SSLeay -e1 >/dev/null 2>&1 || need+=(libnet-ssleay-perl libio-socket-ssl-perl)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "missing system tools: ${need[*]} (run make test as root, or install them)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string waypost-test.localdomain" | debconf-set-selections
# wireshark-common asks whether non-root users may capture; answer no, without asking.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
# postgresql-common makes and starts a cluster of its own at install unless told not to.
if [[ " ${need[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
