"""The estimate and the run walk the same plan by the same rules: on the simulators they
agree on what is taken and, within the overheads the estimate cannot know, on how long."""

from __future__ import annotations

from datetime import datetime

from runner.estimate import estimate
from runner.plan.loader import load_plan
from tests.engine.conftest import CLUSTER, EVENING, Rig, names


def test_the_estimate_predicts_the_simulated_night(rig: Rig) -> None:
    plan_path = rig.write(f"""\
        startup:
          - cool: {{to: -5, rate: 5}}
          - guide: start
        triggers:
          - dither: {{every: 3, amount: 2, settle: {{pixels: 2, time: 4, timeout: 60}}}}
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - slew: {{}}
              - repeat: {{count: 2}}
                steps:
                  - each_filter: [L, R, G]
                    steps: [{{expose: {{count: 3, exposure: 120}}}}]
        shutdown:
          - guide: stop
          - warm: {{to: 10, rate: 5}}
          - park: {{}}
        """, guider=True)
    loaded = load_plan(plan_path)
    assert loaded.plan is not None and loaded.equipment is not None
    predicted = estimate(loaded.plan, loaded.equipment, start=EVENING)
    result = rig.run(plan_path, speed=300)
    assert result.outcome == "completed"
    [target] = predicted.targets
    assert target.light_frames() == result.summary["frames"]["light"] == 18
    events = rig.events(result)
    start = datetime.fromisoformat(names(events, "target_start")[0]["clock"])
    end = datetime.fromisoformat(names(events, "target_end")[0]["clock"])
    ran = (end - start).total_seconds()
    assert abs(ran - target.duration) / ran < 0.10, (ran, target.duration)
