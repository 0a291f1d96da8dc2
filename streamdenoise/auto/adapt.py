"""When to step a tier down or up while streaming: an overuse detector with hysteresis.

Modelled on WebRTC's CPU-overuse detection (its ``OveruseFrameDetector``), which watches the
share of the frame interval the encoder spends on a frame and lowers the resolution or frame
rate when that share stays high. Here the watched quantity is the denoise worker's **usage**:
the time it is busy with one frame (denoising, then handing the frame to the outputs, which
waits when a file's encoder falls behind) divided by the source's frame interval. A worker at
100 % is exactly keeping up; above it frames pile up and the ``latest`` queue drops them.

* **Down** — after :attr:`AdaptRules.overuse_checks` checks in a row (one check per
  :attr:`~AdaptRules.check_s` of frames) that found usage ≥ :attr:`~AdaptRules.overuse`, or
  more than :attr:`~AdaptRules.drop_rate` of the source's frames dropped by the queue. WebRTC
  uses 85 % and two consecutive checks too, but checks every 5 s; a denoiser that falls
  behind loses frames at once, so this one checks every second: ~2 s from overload to relief.
* **Up** — only when the next tier up is *predicted* to run at ≤ :attr:`~AdaptRules.up_target`
  of the interval (today's busy time plus the denoise time scaled by the measured or GMAC
  cost ratio of the two tiers; or, if lower, the busy time that tier had earlier in the run
  at the same frame rate while it kept up) without a single dropped frame, continuously for
  :attr:`~AdaptRules.up_delay_s`. The ratio scales a calibration taken alone; where that
  tier has streamed here already at this rate (``serve`` when cameras that came leave
  again), what it really took is the better guide (the owner offers it only then). The
  70 → 85 % band is the hysteresis: a tier that just fits is never promoted into one that
  would just not. WebRTC, which does not know the cost of its steps, gets the same effect by
  stepping up only below (85 − 1) / 2 = 42 %.
* **Back-off** — a step up followed within :attr:`~AdaptRules.failed_up_window_s` by a step
  down means the load does not fit: the wait before the next step up doubles, up to
  :attr:`~AdaptRules.up_delay_max_s` (WebRTC: 10 s quick ramp-up, 40 s window, ×2 back-off
  to 240 s). A later step down that is not such a failure restores the base delay.

After every switch the first :attr:`~AdaptRules.settle_frames` frames are not judged (the new
tier's caches warm up) and the check window starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AdaptRules:
    check_s: float = 1.0
    overuse: float = 0.85
    overuse_checks: int = 2
    drop_rate: float = 0.02
    up_target: float = 0.70
    up_delay_s: float = 10.0
    up_delay_max_s: float = 240.0
    failed_up_window_s: float = 40.0
    settle_frames: int = 3
    #: Frames a check needs before it judges anything.
    min_frames: int = 3


@dataclass(frozen=True)
class Decision:
    #: -1: one tier down, +1: one tier up.
    step: int
    reason: str


class OveruseDetector:
    """Fed one sample per frame by the denoise worker; answers when to change tier.

    ``interval_s`` is the source's frame interval (None: measured from the frames that
    arrive, processed and dropped). The owner sets :attr:`can_go_down`, :attr:`up_ratio`
    (cost of the next tier up over the current one; None at the top) and :attr:`up_busy_s`
    (that tier's busy time per frame when it kept up earlier at this rate, else None) for the
    current tier. :attr:`fitted` says whether the last check found the tier keeping up.
    """

    def __init__(self, rules: AdaptRules, interval_s: float | None) -> None:
        self.rules = rules
        self.interval_s = interval_s
        self.can_go_down = False
        self.up_ratio: float | None = None
        self.up_busy_s: float | None = None
        self.fitted = False
        self.up_delay_s = rules.up_delay_s
        self._last_up: float | None = None
        self._over = 0
        self._headroom_since: float | None = None
        self._settle = rules.settle_frames
        #: Checks made so far, and the last one's busy time per frame (s): what the owner
        #: learns the rungs' real cost from.
        self.checks = 0
        self.last_busy_s = 0.0
        self._window(None, 0)

    def _window(self, start: float | None, drops: int) -> None:
        """Start a check window (None: at the next frame judged)."""
        self._window_start = start
        self._drops_start = drops
        self._busy: list[float] = []
        self._denoise: list[float] = []

    def switched(self, now: float, step: int) -> None:
        """A switch happened (``step`` −1 down, +1 up, 0 a new frame size): start judging the
        new conditions afresh."""
        if step > 0:
            self._last_up = now
        elif step < 0:
            failed_up = (
                self._last_up is not None and now - self._last_up < self.rules.failed_up_window_s
            )
            self.up_delay_s = (
                min(self.up_delay_s * 2, self.rules.up_delay_max_s)
                if failed_up
                else self.rules.up_delay_s
            )
        self._over = 0
        self._headroom_since = None
        self._settle = self.rules.settle_frames
        self._window(None, 0)

    def frame(self, now: float, busy_s: float, denoise_s: float, drops: int) -> Decision | None:
        """One processed frame: ``busy_s`` the worker spent on it (denoise + hand-off),
        ``denoise_s`` the denoiser alone, ``drops`` the source queue's drop count so far."""
        if self._settle > 0:
            self._settle -= 1
            return None
        if self._window_start is None:
            self._window(now - busy_s, drops)
        self._busy.append(busy_s)
        self._denoise.append(denoise_s)
        elapsed = now - self._window_start
        if elapsed < self.rules.check_s or len(self._busy) < self.rules.min_frames:
            return None
        # a count that went down (a restarted camera worker starts from 0) is no drop
        decision = self._check(now, elapsed, max(0, drops - self._drops_start))
        self._window(now, drops)
        return decision

    def _check(self, now: float, elapsed: float, dropped: int) -> Decision | None:
        rules = self.rules
        done = len(self._busy)
        interval = self.interval_s or elapsed / (done + dropped)
        busy = sum(self._busy) / done
        usage = busy / interval
        self.checks, self.last_busy_s = self.checks + 1, busy
        drop_share = dropped / (done + dropped)
        self.fitted = usage < rules.overuse and not dropped
        if usage >= rules.overuse or drop_share > rules.drop_rate:
            self._over += 1
            self._headroom_since = None
            if self._over < rules.overuse_checks or not self.can_go_down:
                return None
            if drop_share > rules.drop_rate:
                reason = (
                    f"falling behind: the source queue dropped {dropped} of {done + dropped} "
                    f"frames in {elapsed:.1f} s"
                )
            else:
                reason = (
                    f"over budget: {busy * 1000:.0f} ms per frame = {usage:.0%} of the "
                    f"{interval * 1000:.0f} ms frame interval "
                    f"(>= {rules.overuse:.0%} in {self._over} checks in a row)"
                )
            return Decision(-1, reason)
        self._over = 0
        if self.up_ratio is None or dropped:
            self._headroom_since = None
            return None
        denoise = sum(self._denoise) / done
        predicted = (busy + denoise * (self.up_ratio - 1)) / interval
        if self.up_busy_s is not None:
            predicted = min(predicted, self.up_busy_s / interval)
        if predicted > rules.up_target:
            self._headroom_since = None
            return None
        if self._headroom_since is None:
            self._headroom_since = self._window_start
        held = now - self._headroom_since
        if held < self.up_delay_s:
            return None
        return Decision(
            +1,
            f"headroom: {usage:.0%} of the {interval * 1000:.0f} ms frame interval for "
            f"{held:.0f} s; the next tier is predicted at {predicted:.0%} "
            f"(<= {rules.up_target:.0%})",
        )
