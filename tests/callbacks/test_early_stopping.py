from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping

from medcls.callbacks import EarlyStopping


def test_the_state_is_kept_under_lightnings_key_so_that_checkpoints_resume_either_way() -> None:
    for monitor, mode in (("val/loss", "min"), ("val/digit/accuracy", "max")):
        ours = EarlyStopping(patience=3, monitor=monitor, mode=mode)
        assert ours.state_key == LightningEarlyStopping(monitor=monitor, mode=mode).state_key
