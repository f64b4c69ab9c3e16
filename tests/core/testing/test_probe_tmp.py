pytest_plugins = ["pytester"]


def test_probe(pytester):
    assert pytester.path.exists()
