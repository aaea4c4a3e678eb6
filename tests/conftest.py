"""The test suite's fixtures live in tests/fixtures/, one plugin per kind of real part they
start: vtm environments and the shared MLflow server, FTP servers, the Slurm cluster, a
`vtm web` server and a browser."""

pytest_plugins = ["fixtures.vtm", "fixtures.ftp", "fixtures.slurm", "fixtures.web"]
