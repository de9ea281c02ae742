from r2ska.notices import dataset_notice


def test_notice_for_offline_stand_in():
    notice = dataset_notice("digits-offline")
    assert notice is not None
    assert "admonition warning" in notice.data
    assert "not on MNIST" in notice.data


def test_no_notice_for_real_datasets():
    assert dataset_notice("mnist") is None
    assert dataset_notice("fashion-mnist") is None
