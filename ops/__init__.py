"""Operations CLI for the cluster: `python -m ops --help`."""
