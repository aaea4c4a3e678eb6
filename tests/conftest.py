"""The test suite's fixtures live in tests/fixtures/, one plugin per kind of real part they
start: vtm environments and the shared MLflow server, FTP servers (pyftpdlib, aioftp, vsftpd, an
MS-DOS-style server), the Slurm clusters (with and without accounting), a `vtm web` server and a
browser, a TCP proxy that takes a server away and brings it back."""

pytest_plugins = ["fixtures.vtm", "fixtures.ftp", "fixtures.slurm", "fixtures.vsftpd", "fixtures.msdos_ftp",
                  "fixtures.web", "fixtures.tcp_proxy"]
