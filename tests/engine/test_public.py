"""The engine's curated public surface imports and is what it says."""

import noisereg.engine as engine


def test_every_public_name_exists_and_is_documented():
    assert len(set(engine.__all__)) == len(engine.__all__)
    for name in engine.__all__:
        obj = getattr(engine, name)
        assert obj.__doc__, name
