"""providers.calls: the one way SDK calls are made (rate limit, retries, translation)."""

from __future__ import annotations

import random
import threading

import pytest

from providers.calls import SdkCaller, TokenBucket
from providers.errors import CloudError, Conflict, InvalidConfiguration, NotFound, Throttled, Transient


class FakeTime:
    """A clock that only moves when someone sleeps, and a record of the sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def caller(time: FakeTime, translate: object = None, **kw: object) -> SdkCaller:
    def default(exc: Exception) -> CloudError:
        return CloudError(str(exc), code="Unknown")

    return SdkCaller(
        translate or default,  # type: ignore[arg-type]
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(0),
        **kw,  # type: ignore[arg-type]
    )


class Script:
    """A fake SDK call that raises the given errors in turn, then returns 'done'."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.threads: set[int] = set()

    def __call__(self, value: str = "done") -> str:
        self.calls += 1
        self.threads.add(threading.get_ident())
        if self.errors:
            raise self.errors.pop(0)
        return value


async def test_bucket_allows_a_burst_then_the_rate() -> None:
    time = FakeTime()
    bucket = TokenBucket(2.0, 3, clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        await bucket.acquire()
    assert time.sleeps == []
    await bucket.acquire()
    await bucket.acquire()
    assert time.sleeps == [pytest.approx(0.5), pytest.approx(0.5)]
    time.now += 10  # idle: the bucket refills, but never beyond the burst
    for _ in range(3):
        await bucket.acquire()
    assert len(time.sleeps) == 2
    await bucket.acquire()
    assert len(time.sleeps) == 3


def test_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)


async def test_calls_share_the_rate_limit() -> None:
    time = FakeTime()
    sdk = caller(time, qps=10.0, burst=1)
    fn = Script()
    for _ in range(5):
        await sdk.call(fn)
    assert time.now == pytest.approx(0.4)
    assert sdk.attempts == 5


async def test_runs_off_the_event_loop_with_arguments() -> None:
    sdk = caller(FakeTime())
    fn = Script()
    assert await sdk.call(fn, value="hello") == "hello"
    assert threading.get_ident() not in fn.threads


@pytest.mark.parametrize("error", [Throttled("slow down"), Transient("503"), Conflict("in use")])
async def test_retryable_errors_are_retried(error: CloudError) -> None:
    time = FakeTime()
    sdk = caller(time)
    fn = Script(error, error)
    assert await sdk.call(fn) == "done"
    assert fn.calls == 3
    assert sdk.attempts == 3
    assert len(time.sleeps) == 2


async def test_retry_after_is_honoured() -> None:
    time = FakeTime()
    sdk = caller(time, base_delay=0.01, max_delay=0.05)
    fn = Script(Throttled("slow down", retry_after=7.0))
    assert await sdk.call(fn) == "done"
    assert time.sleeps == [7.0]


async def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    time = FakeTime()
    sdk = caller(time, base_delay=1.0, max_delay=4.0, max_attempts=7)
    fn = Script(*(Transient("503") for _ in range(6)))
    await sdk.call(fn)
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert len(time.sleeps) == 6
    for slept, ceiling in zip(time.sleeps, ceilings, strict=True):
        assert 0.0 <= slept <= ceiling
    assert len(set(time.sleeps)) > 1  # jittered, not a fixed schedule


@pytest.mark.parametrize("error", [NotFound("gone"), InvalidConfiguration("bad annotation")])
async def test_final_errors_are_not_retried(error: CloudError) -> None:
    time = FakeTime()
    sdk = caller(time)
    fn = Script(error)
    with pytest.raises(type(error)):
        await sdk.call(fn)
    assert fn.calls == 1
    assert sdk.attempts == 1
    assert time.sleeps == []


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    time = FakeTime()
    sdk = caller(time, max_attempts=4)
    fn = Script(*(Transient(f"503 #{i}") for i in range(10)))
    with pytest.raises(Transient, match="503 #3"):
        await sdk.call(fn)
    assert fn.calls == 4
    assert sdk.attempts == 4


class SdkBoom(Exception):
    pass


async def test_sdk_exceptions_are_translated_once_per_attempt() -> None:
    seen: list[Exception] = []

    def translate(exc: Exception) -> CloudError:
        seen.append(exc)
        if "throttle" in str(exc):
            return Throttled("Rate exceeded", code="Throttling")
        return NotFound("no such thing", code="InvalidInstanceID.NotFound")

    sdk = caller(FakeTime(), translate)
    fn = Script(SdkBoom("throttle"), SdkBoom("missing"))
    with pytest.raises(NotFound) as caught:
        await sdk.call(fn)
    assert [str(e) for e in seen] == ["throttle", "missing"]
    assert isinstance(caught.value.__cause__, SdkBoom)
    assert caught.value.code == "InvalidInstanceID.NotFound"
    assert sdk.attempts == 2


async def test_our_errors_pass_through_untranslated() -> None:
    seen: list[Exception] = []

    def translate(exc: Exception) -> CloudError:
        seen.append(exc)
        return CloudError("translated")

    sdk = caller(FakeTime(), translate)
    with pytest.raises(InvalidConfiguration):
        await sdk.call(Script(InvalidConfiguration("ours already")))
    assert seen == []
