#!/usr/bin/env bash
# System packages the test suite needs (a single-node Slurm cluster, with slurmdbd over MariaDB
# for job accounting; PostgreSQL for the MLflow backend test; vsftpd for the registry's FTP
# tests; Chromium and its WebDriver for the `vtm web` browser test), from Debian's apt. Installs
# only what is missing; needs root (or sudo). The fixtures start their own instances; on a box
# with systemd, apt also starts the packages' services.
set -euo pipefail
need=()
for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge \
            /usr/lib/postgresql/15/bin/initdb:postgresql \
            slurmdbd:slurmdbd sacct:slurm-client mariadbd:mariadb-server mariadb-install-db:mariadb-server \
            vsftpd:vsftpd chromium:chromium chromedriver:chromium-driver; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
