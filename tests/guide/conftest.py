"""A small guide site built once for the site and browser tests (two cheap experiments run)."""

import pytest

SITE_NUMBERS = (7, 12)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from ember.guide.site import build_site

    root = tmp_path_factory.mktemp("site")
    index = build_site(root, quick=True, numbers=SITE_NUMBERS, log=None)
    return index.parent
