"""The agent as a langgraph state graph, built from an `AgentConfig`.

Nodes (only those the configuration needs are added):
    plan       the planner writes a short numbered plan (planning: once or every:K)
    act        the actor replies `Action: <tool>` + `Input: <text>`, or `Final Answer: <text>`
    tool       the named tool runs; its observation joins the memory
    summarize  the running summary is rewritten after each step (memory: summary)
Edges: start -> plan (or act); act -> tool | end (answer or step limit); tool -> summarize ->
plan (every K steps) or act. A reply that follows neither form costs a step and is answered
with a reminder of the format; running out of steps ends the task with the failure
`step_limit`. Every model call is kept with its usage and cost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from agents.config import AgentConfig
from agents.tools import Tool
from llm_eff.backends.base import Completion, GenerationConfig, user_chat

SYSTEM = (
    "You solve a task step by step with tools. Each reply is exactly one of:\n"
    "Action: <tool name>\nInput: <tool input>\n"
    "or, when you know the answer:\n"
    "Final Answer: <the answer only: a number, a word or a short list>"
)
_FINAL = re.compile(r"final answer\s*:\s*(.+)", re.I | re.S)
_ACTION = re.compile(
    r"action\s*:\s*([\w-]+)\s*(?:\n|$)(?:\s*(?:action\s+)?input\s*:\s*(.*))?", re.I | re.S
)


@dataclass
class Call:
    """One model call of a run."""

    role: str
    completion: Completion


@dataclass
class Step:
    """One acting step: the model's reply and, for a tool call, its observation."""

    reply: str
    tool: str | None = None
    tool_input: str = ""
    observation: str = ""


class AgentState(TypedDict, total=False):
    """What flows through the graph."""

    question: str
    attachment: str | None
    plan: str
    summary: str
    steps: list[Step]
    calls: list[Call]
    answer: str | None
    failure: str | None
    pending: tuple[str, str] | None


@dataclass
class Models:
    """Calls the backend of each role with the run's decoding settings."""

    backends: dict[str, Any]
    config: AgentConfig
    temperature: float = 0.0
    seed: int | None = None
    calls: list[Call] = field(default_factory=list)

    def __call__(self, role: str, prompt: str, system: str | None = None) -> str:
        """One completion from the role's model."""
        gen = GenerationConfig(
            max_new_tokens=self.config.max_tokens,
            temperature=self.temperature if role == "actor" else 0.0,
            seed=self.seed,
            stop=("\nObservation:",),
        )
        completion = self.backends[role].generate([user_chat(prompt, system)], gen)[0][0]
        self.calls.append(Call(role, completion))
        return completion.text


def parse_reply(text: str) -> tuple[str, str | None, str]:
    """('final', answer, '') | ('action', tool, input) | ('invalid', None, '')."""
    action = _ACTION.search(text)
    final = _FINAL.search(text)
    if final and (not action or final.start() < action.start()):
        answer = final.group(1).strip().splitlines()[0].strip().strip("`").strip()
        return "final", answer.rstrip("."), ""
    if action:
        return "action", action.group(1).strip().lower(), (action.group(2) or "").strip()
    return "invalid", None, ""


def _memory_view(state: AgentState, memory: str) -> str:
    steps = state.get("steps") or []
    if not steps:
        return ""
    if memory == "none":
        last = steps[-1]
        return f"Last observation: {last.observation[:800]}" if last.observation else ""
    if memory == "summary":
        last = steps[-1]
        tail = f"\nLast observation: {last.observation[:800]}" if last.observation else ""
        return f"What is known so far: {state.get('summary', '')}{tail}"
    lines = []
    for step in steps:
        if step.tool:
            lines.append(f"Action: {step.tool}\nInput: {step.tool_input}")
        lines.append(f"Observation: {step.observation[:500]}")
    return "\n".join(lines)


def _task_text(state: AgentState) -> str:
    attachment = state.get("attachment")
    note = f"\nAttached file: {Path(attachment).name}" if attachment else ""
    return f"Task: {state['question']}{note}"


def build_graph(config: AgentConfig, tools: dict[str, Tool], models: Models) -> Any:
    """The compiled langgraph graph for `config` (see the module docstring)."""
    from langgraph.graph import END, START, StateGraph

    tool_list = "\n".join(f"- {t.name}: {t.description}" for t in tools.values())
    system = f"{SYSTEM}\n\nTools:\n{tool_list}"
    every = config.replan_every

    def plan(state: AgentState) -> AgentState:
        progress = _memory_view(state, config.memory)
        prompt = (
            f"{_task_text(state)}\nTools:\n{tool_list}\n"
            + (f"Progress so far:\n{progress}\n" if progress else "")
            + "Write a short numbered plan (at most 4 steps) to answer the task."
        )
        return {"plan": models("planner", prompt)}

    def act(state: AgentState) -> AgentState:
        steps = list(state.get("steps") or [])
        parts = [_task_text(state)]
        if state.get("plan"):
            parts.append(f"Plan:\n{state['plan']}")
        memory = _memory_view(state, config.memory)
        if memory:
            parts.append(memory)
        parts.append("Your next reply:")
        reply = models("actor", "\n\n".join(parts), system)
        kind, name, text = parse_reply(reply)
        if kind == "final":
            return {"answer": name, "steps": [*steps, Step(reply)]}
        if kind == "action":
            return {"pending": (name or "", text), "steps": steps}
        steps.append(Step(reply, observation="error: reply with Action/Input or Final Answer"))
        return {"steps": steps, "pending": None}

    def run_tool(state: AgentState) -> AgentState:
        name, text = state["pending"] or ("", "")
        tool = tools.get(name)
        attachment = Path(state["attachment"]) if state.get("attachment") else None
        if tool is None:
            observation = f"error: unknown tool '{name}'; tools: {', '.join(tools)}"
        else:
            try:
                observation = tool.run(text, attachment)
            except Exception as exc:  # noqa: BLE001 - a tool failure is an observation
                observation = f"error: {type(exc).__name__}: {exc}"
        step = Step(f"Action: {name}\nInput: {text}", name, text, observation)
        return {"steps": [*(state.get("steps") or []), step], "pending": None}

    def summarize(state: AgentState) -> AgentState:
        prompt = (
            f"{_task_text(state)}\nKnown so far: {state.get('summary', '')}\n"
            f"{_memory_view(state, 'none')}\n"
            "Rewrite what is known so far in at most three sentences, keeping every number."
        )
        return {"summary": models("planner", prompt)}

    def out_of_steps(state: AgentState) -> bool:
        return len(state.get("steps") or []) >= config.max_steps

    def after_act(state: AgentState) -> str:
        if state.get("answer") is not None:
            return END
        if state.get("pending"):
            return "tool"
        return "stop" if out_of_steps(state) else "act"

    def after_step(state: AgentState) -> str:
        if out_of_steps(state):
            return "stop"
        if every > 0 and len(state.get("steps") or []) % every == 0:
            return "plan"
        return "act"

    def stop(state: AgentState) -> AgentState:
        return {"failure": "step_limit"}

    graph = StateGraph(AgentState)
    graph.add_node("act", act)
    graph.add_node("tool", run_tool)
    graph.add_node("stop", stop)
    graph.add_edge("stop", END)
    if every:
        graph.add_node("plan", plan)
        graph.add_edge(START, "plan")
        graph.add_edge("plan", "act")
    else:
        graph.add_edge(START, "act")
    targets = {"act": "act", "stop": "stop", **({"plan": "plan"} if every > 0 else {})}
    if config.memory == "summary":
        graph.add_node("summarize", summarize)
        graph.add_edge("tool", "summarize")
        graph.add_conditional_edges("summarize", after_step, targets)
    else:
        graph.add_conditional_edges("tool", after_step, targets)
    graph.add_conditional_edges(
        "act", after_act, {END: END, "tool": "tool", "stop": "stop", "act": "act"}
    )
    return graph.compile()
