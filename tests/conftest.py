"""The test suite's fixtures live in tests/fixtures/, one plugin per kind of real part they
start: vtm environments and the shared MLflow server, FTP servers, the Slurm cluster."""

pytest_plugins = ["fixtures.vtm", "fixtures.ftp", "fixtures.slurm"]
