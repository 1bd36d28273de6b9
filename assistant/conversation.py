"""Understanding and execution of one utterance: fast path first, the LLM on no match or
ambiguity, one executor for both, and the confirmation window for sensitive devices.

What the LLM proposes runs only for targets the request grounds (``assistant/llm/grounding``);
the rest becomes a question. A question's "yes" is bound to it: its conversation, its id,
its devices; it expires and is consumed once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from assistant.config import UnderstandingConfig
from assistant.llm.grounding import Grounding, is_question
from assistant.messages import (
    Action,
    CommandNotSentError,
    CommandNotSupportedError,
    ConversationRequest,
    ConversationResponse,
    NotStoredError,
    ScheduledRun,
    ToolCall,
    UnderstandingPath,
)
from assistant.registry import DeviceRegistry, Entity, normalize_name
from assistant.replies import Answer, kept_names, replies_for
from assistant.safety import SECRET_MARK, SafetyPolicy, extract_secrets, redact
from assistant.understanding.compound import Part
from assistant.understanding.fastpath import NO_MATCH, FastPath, FastPathResult
from assistant.understanding.followups import FollowUp, LastTurn
from assistant.understanding.reading import FastReader
from assistant.understanding.routes import COMMAND_TEXT
from assistant.understanding.words import words_for
from device_adapters.base import ReportWait
from skills.base import (
    CommandSink,
    ScheduledCall,
    SkillRegistry,
    ToolContext,
    ToolValidationError,
    call_entity_ids,
    spoken_names,
)

log = logging.getLogger(__name__)

_CANNOT = "Sorry, I can't do that yet."
# "Everything" switches things on or off, opens or closes them; it never means "play" or
# "set the volume" everywhere.
SWEEPING_TOOLS = frozenset({"turn_on", "turn_off", "open", "close"})
MAX_GUESSES = 3  # at most this many unnamed devices are offered in one question

# The unheard notices (a timer that went off, a reminder) for a conversation or an area, as
# the words to say before the next reply there; "" when there are none.
NoticesForReply = Callable[[str | None, str | None], str]


def classify_answer(text: str, language: str = "en") -> Answer | None:
    """"yes" only when unambiguous; "no" for a refusal; "mixed" for an answer that mixes
    or takes back; None when the text is no answer at all (a new request). The words are
    the language's (``assistant/data/replies_<lang>.yaml``)."""
    return replies_for(language).answers.classify(text)


@dataclass(frozen=True, slots=True)
class Turn:
    """One finished exchange, kept so follow-ups can refer back to it (secrets redacted)."""

    text: str
    calls: tuple[ToolCall, ...]
    reply: str
    at: float
    # the fast-path sentences the calls came from, for "and the kitchen too"
    understood: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Proposal:
    """What a reasoner proposes: calls to run and/or a reply (answer or question)."""

    calls: tuple[ToolCall, ...] = ()
    reply: str | None = None


class Reasoner(Protocol):
    """The LLM path as the conversation sees it."""

    @property
    def status(self) -> str: ...

    def start(self) -> None:
        """Begin loading in the background; must not block."""

    async def stop(self) -> None: ...

    async def propose(self, text: str, area: str | None, history: tuple[Turn, ...],
                      hint: str | None) -> Proposal: ...


class ReasonerUnavailable(RuntimeError):
    """The reasoner cannot answer now (loading, failed, no model); the text says why."""


@dataclass(frozen=True, slots=True)
class _Pending:
    """Calls waiting for a "yes", and the devices that yes is for."""

    id: str
    calls: tuple[ToolCall, ...]
    entity_ids: frozenset[str]
    until: float
    understood: tuple[str, ...] = ()  # the fast-path sentences, kept for follow-ups


@dataclass
class _ConversationState:
    pending: _Pending | None = None
    history: list[Turn] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Conversation:
    def __init__(self, registry: DeviceRegistry, skills: SkillRegistry, send: CommandSink,
                 fast_path: FastPath | None, reasoner: Reasoner | None,
                 config: UnderstandingConfig, *, policy: SafetyPolicy,
                 report_wait: ReportWait | None = None,
                 notices_for_reply: NoticesForReply | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 followup_window_s: float = 120.0) -> None:
        self.registry = registry
        self.skills = skills
        self.send = send
        self.fast_path = fast_path
        self.reasoner = reasoner
        self.config = config
        self.replies = replies_for(config.language)
        self.words = words_for(config.language)
        self.policy = policy
        self.report_wait = report_wait
        self.notices_for_reply = notices_for_reply
        self.clock = clock
        # how long "turn it off" still refers to the last turn (llm.history_window_s)
        self.followup_window_s = followup_window_s
        self._reader = FastReader(fast_path) if fast_path is not None else None
        self._states: dict[str, _ConversationState] = {}

    async def handle(self, request: ConversationRequest) -> ConversationResponse:
        conversation_id = request.conversation_id or f"area:{request.area or '-'}"
        state = self._states.setdefault(conversation_id, _ConversationState())
        async with state.lock:  # one utterance at a time per conversation keeps "yes" sane
            response = await self._handle(replace(request, conversation_id=conversation_id),
                                          state)
        told = self.notices_for_reply(conversation_id, request.area) \
            if self.notices_for_reply else ""
        if told:
            response = replace(response, reply=f"{told} {response.reply}".strip())
        return replace(response, conversation_id=conversation_id,
                       reply=self.replies.say(response.reply, keep=kept_names(self.registry)))

    async def run_scheduled(self, run: ScheduledRun) -> ConversationResponse:
        """Calls a timer, schedule or rule runs on its own: the same executor and policy as
        a spoken request; only ``run.confirmed`` counts as a yes, and nobody can be asked."""
        context = self._context(run.area, run.conversation_id, run.confirmed)
        replies, actions, to_confirm, success = await self._run_calls(run.calls, context,
                                                                      run.origin)
        if to_confirm:
            names = spoken_names([e for e in map(self.registry.get, {
                eid for call in to_confirm for eid in call_entity_ids(call)}) if e is not None])
            replies = [r for r in replies if not r.rstrip().endswith("?")]
            replies.append(f"I left {names} alone: that needs your yes, and nobody confirmed "
                           "it for this.")
            success = False
        return ConversationResponse(" ".join(r for r in replies if r), tuple(actions), "none",
                                    conversation_id=run.conversation_id, success=success)

    async def _handle(self, request: ConversationRequest,
                      state: _ConversationState) -> ConversationResponse:
        text = request.text.strip()
        if not text:
            return ConversationResponse("I didn't hear anything.", success=False)
        if len(text) > 1000:
            return ConversationResponse("That is too long for me; please say it shorter.",
                                        success=False)
        answered = await self._answer_pending(text, request, state)
        if answered is not None:
            return answered

        hint = None
        if self._reader is not None:
            await self._reader.fast_path.prepare()  # built off the loop when the home changed
            result = NO_MATCH
            for reading in self._reader.readings(text, request.area, self._recent_turn(state),
                                                 self._runnable):
                if isinstance(reading, FollowUp):
                    response = await self._follow_up(text, reading, request, state)
                elif isinstance(reading, FastPathResult):
                    result = reading
                    response = await self._execute(
                        text, result.calls, "fast", request, state, understood=(text,)
                    ) if result.calls else None
                else:
                    response = await self._compound(text, reading, request, state)
                if response is not None:
                    return response
            if result.reply is not None and not result.unresolved:
                return self._remember(text, (), ConversationResponse(result.reply, path="fast"),
                                      state)
            if result.unresolved:
                # Ambiguous or unknown target: the LLM may know better, else ask the user.
                if not self._reasoner_ready():
                    return self._remember(text, (), ConversationResponse(
                        result.reply or "", path="fast", clarification=result.clarification,
                        success=False), state)
                hint = result.reply
        if self.words.asks_what_it_can_do(text):
            return ConversationResponse(self._capabilities(), path="none")
        return await self._reason(text, request, state, hint)

    def _runnable(self, calls: tuple[ToolCall, ...]) -> bool:
        return all(self.skills.has_tool(call.tool) for call in calls)

    # -- compound requests and follow-ups on the fast path ---------------------------------

    async def _compound(self, text: str, parts: tuple[Part, ...], request: ConversationRequest,
                        state: _ConversationState) -> ConversationResponse | None:
        """Every understood part in order through one execution; one reply that also says
        which parts were not done. None when no part is understood, or when some part is not
        and the LLM, which reads the whole request, is ready."""
        done = [p for p in parts if p.result.calls and self._runnable(p.result.calls)]
        if not done or (len(done) < len(parts) and self._reasoner_ready()):
            return None
        notes = tuple(_not_done(p) for p in parts if p not in done)
        response = await self._execute(
            text, tuple(c for p in done for c in p.result.calls), "fast", request, state,
            notes=notes, understood=tuple(p.understood or p.said for p in done))
        return replace(response, clarification=any(p.result.clarification for p in parts))

    def _recent_turn(self, state: _ConversationState) -> LastTurn | None:
        """The last turn of this conversation while a follow-up may still refer to it."""
        last = state.history[-1] if state.history else None
        if last is None or not last.calls or self.clock() - last.at > self.followup_window_s:
            return None
        return LastTurn(last.understood, last.calls)

    async def _follow_up(self, text: str, follow: FollowUp, request: ConversationRequest,
                         state: _ConversationState) -> ConversationResponse | None:
        """The follow-up run; None when its new target did not resolve and the LLM, which
        may know it, is ready."""
        if not follow.calls:  # the new target did not resolve: the LLM may know, else ask
            if self._reasoner_ready():
                return None
            return self._remember(text, (), ConversationResponse(
                follow.reply or "", path="fast", clarification=follow.clarification,
                success=False), state)
        return await self._execute(text, follow.calls, "fast", request, state,
                                   undo=follow.undo, understood=follow.understood)

    # -- confirmations ---------------------------------------------------------------------

    async def _answer_pending(self, text: str, request: ConversationRequest,
                              state: _ConversationState) -> ConversationResponse | None:
        """The response to an answer to the pending question, or None for a new request.
        Any answer consumes the question; only an unambiguous "yes" in time runs it."""
        answer = self.replies.answers.classify(text)
        pending, state.pending = state.pending, None
        if pending is None:
            if answer == "yes" and len(text.split()) <= 3:
                return ConversationResponse("There is nothing waiting for a confirmation.",
                                            path="confirmation", success=False)
            return None
        if answer is None:
            return None  # a new request replaces the question
        if self.clock() > pending.until:
            return ConversationResponse(
                "That confirmation came too late, so I did nothing. Please ask again.",
                path="confirmation", success=False)
        if request.confirmation_id is not None and request.confirmation_id != pending.id:
            return ConversationResponse("That answer was for another question, so I did "
                                        "nothing.", path="confirmation", success=False)
        if answer == "yes":
            return await self._execute(text, pending.calls, "confirmation", request, state,
                                       confirmed=pending.entity_ids,
                                       understood=pending.understood)
        if answer == "mixed":
            return ConversationResponse("I didn't take that as a clear yes, so I did nothing.",
                                        path="confirmation")
        return ConversationResponse("OK, I won't.", path="confirmation")

    # -- the reasoning path ----------------------------------------------------------------

    def _reasoner_ready(self) -> bool:
        return self.reasoner is not None and self.reasoner.status == "ready"

    def _capabilities(self) -> str:
        return "I can " + "; ".join(self.skills.capabilities()) + "."

    async def _reason(self, text: str, request: ConversationRequest,
                      state: _ConversationState, hint: str | None) -> ConversationResponse:
        grounding = Grounding(self.registry, self.policy, text, self._previous_targets(state))
        if not grounding.about_the_home() and not self.skills.speaks_of_a_skill(grounding.words):
            reply = f"{_CANNOT} {self._capabilities()}" if self.skills.capabilities() \
                else _CANNOT
            return self._remember(text, (), ConversationResponse(reply, success=False), state)
        if self.reasoner is None:
            return ConversationResponse("Sorry, I didn't understand that.", success=False)
        masked, secrets = extract_secrets(text)  # codes never reach the model or its history
        try:  # the reasoner keeps the turns within its own history window
            proposal = await self.reasoner.propose(masked, request.area, tuple(state.history),
                                                   hint)
        except ReasonerUnavailable as exc:
            return ConversationResponse(f"Sorry, I didn't understand that ({exc}).",
                                        path="llm", success=False)
        calls, ask_first, left_alone = self._grounded(proposal.calls, grounding,
                                                      is_question(text))
        note = (f"I left {spoken_names(left_alone)} alone: say {'its' if len(left_alone) == 1 else 'their'} "
                "name if you want me to act on it.") if left_alone else ""
        if not calls:
            # The model's own words may claim what never happened: keep only its questions
            # and its answers to questions, and never beside actions it proposed.
            acted = any(c.tool != "get_state" for c in proposal.calls)
            reply = proposal.reply if proposal.reply and not acted and (
                is_question(text) or proposal.reply.rstrip().endswith("?")) else None
            reply = " ".join(r for r in (reply, note) if r)
            return self._remember(text, (), ConversationResponse(
                reply or "Sorry, I didn't understand that.", path="llm",
                success=bool(reply) and not left_alone), state)
        calls = tuple(_with_secrets(call, secrets) for call in calls)
        response = await self._execute(text, calls, "llm", request, state, ask_first=ask_first)
        skipped = _named_but_untouched(grounding, calls, left_alone)
        if skipped:  # part of a compound request the model dropped: say which
            note = f"{note} I did nothing with {spoken_names(skipped)}.".strip()
        if not note:
            return response
        return replace(response, reply=f"{response.reply} {note}".strip(), success=False)

    def _previous_targets(self, state: _ConversationState) -> list[str]:
        if not state.history:
            return []
        return [entity_id for call in state.history[-1].calls
                for entity_id in call.args.get("entity_ids", ())]

    def _grounded(self, calls: tuple[ToolCall, ...], grounding: Grounding,
                  question: bool) -> tuple[tuple[ToolCall, ...], frozenset[str], list[Entity]]:
        """The calls to run; the targets to ask about first because the request did not
        ground them (only of a kind or room it names, when it names no device by name, and
        only a few); and the sensitive devices left alone because the request did
        not name them (a lock is never a guess). A question only ever reads states."""
        kept: list[ToolCall] = []
        ask_first: set[str] = set()
        left_alone: dict[str, Entity] = {}
        reads: dict[str, None] = {}
        names_something = bool(grounding.named)
        for call in calls:
            if grounding.contradicts(call.tool):
                continue  # "turn it off" answered with turn_on
            if "entity_ids" not in call.args:
                if self._grounded_without_targets(call, grounding):
                    kept.append(call)
                continue
            targets = [e for e in map(self.registry.get, call.args.get("entity_ids", ()))
                       if e is not None]
            reasons = {e.entity_id: grounding.reason(e) for e in targets}
            grounded = {eid for eid, why in reasons.items() if why is not None and (
                why != "sweep" or call.tool in SWEEPING_TOOLS)}
            if question or call.tool == "get_state":
                reads.update(dict.fromkeys(e.entity_id for e in targets
                                           if e.entity_id in grounded))
                continue
            unnamed_sensitive = {e.entity_id for e in targets
                                 if e.entity_id not in grounded and self.policy.is_sensitive(e)}
            if not grounding.sweeps:  # "everything" means the rest anyway: no need to say
                left_alone.update((e.entity_id, e) for e in targets
                                  if e.entity_id in unnamed_sensitive)
            targets = [e for e in targets if e.entity_id not in unnamed_sensitive and (
                e.entity_id in grounded or e.domain in grounding.domains
                or e.area in grounding.areas)]
            if names_something:  # what the request names is what it is about
                targets = [e for e in targets if e.entity_id in grounded]
            if targets:
                ask_first.update(e.entity_id for e in targets if e.entity_id not in grounded)
                kept.append(ToolCall(call.tool, {**call.args,
                                                 "entity_ids": [e.entity_id for e in targets]}))
        if reads:
            kept.append(ToolCall("get_state", {"entity_ids": list(reads)}))
        if len(ask_first) > MAX_GUESSES:  # a guess at many devices is no reading at all
            stripped = (ToolCall(c.tool, {**c.args, "entity_ids": [
                e for e in c.args["entity_ids"] if e not in ask_first]}) for c in kept)
            kept = [c for c in stripped if c.args["entity_ids"]]
            ask_first = set()
        return tuple(kept), frozenset(ask_first), list(left_alone.values())

    def _grounded_without_targets(self, call: ToolCall, grounding: Grounding) -> bool:
        """A call that acts on no device now (a timer, a list, a reminder) runs only when the
        request speaks of what its skill is about, and the devices it keeps for later
        ("in 5 minutes turn off the lights") are each named by the request, never a guess."""
        if not self.skills.topic_words(call.tool) & set(grounding.words):
            return False
        kept = [self.registry.get(eid) for eid in call_entity_ids(call)]
        return all(e is not None and grounding.reason(e) not in (None, "sweep") for e in kept)

    # -- execution -------------------------------------------------------------------------

    async def _execute(self, text: str, calls: tuple[ToolCall, ...], path: UnderstandingPath,
                       request: ConversationRequest, state: _ConversationState,
                       confirmed: frozenset[str] = frozenset(),
                       ask_first: frozenset[str] = frozenset(), *,
                       undo: tuple[ToolCall, ...] = (), notes: tuple[str, ...] = (),
                       understood: tuple[str, ...] = ()) -> ConversationResponse:
        """Runs ``undo`` (taking back the last action, kept out of the history) and then
        ``calls``; ``notes`` (parts not done) close the reply."""
        context = self._context(request.area, request.conversation_id, confirmed, ask_first)
        calls, problems = self._with_commands_understood(calls, request.area)
        replies, actions, to_confirm, success = await self._run_calls(undo + calls, context,
                                                                      path)
        replies = [*problems, *replies, *notes]
        success = success and not problems and not notes
        pending = None
        if to_confirm:
            pending = _Pending(uuid.uuid4().hex[:12], tuple(to_confirm), frozenset(
                eid for call in to_confirm for eid in call_entity_ids(call)),
                self.clock() + self.config.confirmation_window_s, understood)
        state.pending = pending
        response = ConversationResponse(
            " ".join(r for r in replies if r), tuple(actions), path,
            awaiting_confirmation=pending is not None,
            confirmation_id=pending.id if pending else None,
            pending=tuple(Action(call.tool, eid, redact({k: v for k, v in call.args.items()
                                                         if k != "entity_ids"}))
                          for call in to_confirm for eid in call_entity_ids(call)),
            success=success)
        return self._remember(text, calls, response, state, understood)

    def _context(self, area: str | None, conversation_id: str | None,
                 confirmed: frozenset[str] = frozenset(),
                 ask_first: frozenset[str] = frozenset()) -> ToolContext:
        return ToolContext(self.registry, self.send, self.policy, area=area,
                           confirmed=confirmed, ask_first=ask_first,
                           report_wait=self.report_wait, conversation_id=conversation_id,
                           skills=self.skills)

    async def _run_calls(self, calls: tuple[ToolCall, ...], context: ToolContext,
                         origin: str) -> tuple[list[str], list[Action], list[ToolCall], bool]:
        """Every call through its tool: the replies, what was done, what waits for a yes,
        and whether all of it worked."""
        replies: list[str] = []
        actions: list[Action] = []
        to_confirm: list[ToolCall] = []
        success = True
        for call in calls:
            try:
                result = await self.skills.run(call, context)
            except ToolValidationError as exc:
                log.warning("rejected %s call: %s", origin, exc)
                replies.append(f"Sorry, I couldn't {call.tool.replace('_', ' ')} that.")
                success = False
                continue
            except CommandNotSentError:
                replies.append("I can't reach the devices right now; please try again later.")
                success = False
                continue
            except CommandNotSupportedError as exc:
                replies.append(f"Sorry, {exc}.")
                success = False
                continue
            except NotStoredError:  # a full or read-only disk; the cause is in the log
                replies.append("Sorry, I could not save that, so nothing was changed.")
                success = False
                continue
            replies.append(result.reply)
            actions.extend(result.actions)
            to_confirm.extend(result.needs_confirmation)
            success = success and result.success
        return replies, actions, to_confirm, success

    def _with_commands_understood(self, calls: tuple[ToolCall, ...], area: str | None
                                  ) -> tuple[tuple[ToolCall, ...], list[str]]:
        """A call that keeps a command for later ("turn off the lights in 5 minutes") has it
        as words; the fast path turns them into the calls to keep, understood now, so they
        are checked and confirmed when the timer or schedule is made. Calls whose command is
        not understood are dropped with the reason."""
        kept: list[ToolCall] = []
        problems: list[str] = []
        for call in calls:
            command = call.args.get(COMMAND_TEXT)
            if command is None:
                kept.append(call)
                continue
            understood = self.fast_path.understand(str(command), area) \
                if self.fast_path is not None else None
            inner = understood.calls if understood is not None else ()
            if not inner or any(COMMAND_TEXT in c.args for c in inner):
                problems.append(understood.reply if understood is not None and understood.reply
                                else f"Sorry, I didn't understand what to do then: "
                                     f"\"{extract_secrets(str(command))[0]}\".")
                continue
            args = {k: v for k, v in call.args.items() if k != COMMAND_TEXT}
            args["calls"] = [ScheduledCall(tool=c.tool, args=c.args).model_dump()
                             for c in inner]
            kept.append(ToolCall(call.tool, args))
        return tuple(kept), problems

    def _remember(self, text: str, calls: tuple[ToolCall, ...], response: ConversationResponse,
                  state: _ConversationState, understood: tuple[str, ...] = ()
                  ) -> ConversationResponse:
        """Keep the turn for follow-ups: the calls as far as they ran, secrets redacted."""
        masked, _ = extract_secrets(text)
        understood = tuple(extract_secrets(sentence)[0] for sentence in understood)
        acted = {a.entity_id for a in response.actions}
        ran = [c if c.tool == "get_state" else ToolCall(c.tool, {**c.args, "entity_ids": [
                   e for e in c.args.get("entity_ids", ()) if e in acted]})
               for c in calls if c.tool == "get_state" or acted & set(c.args.get("entity_ids", ()))]
        redacted = tuple(ToolCall(c.tool, redact(c.args)) for c in ran)
        state.history = [*state.history[-3:],
                         Turn(masked, redacted, response.reply, self.clock(), understood)]
        return response


def _named_but_untouched(grounding: Grounding, calls: tuple[ToolCall, ...],
                         left_alone: list[Entity]) -> list[Entity]:
    """Devices the request names that no call touched ("the Kitchen Lamp" when "the Lamp"
    was touched is the same device said shorter, not a dropped one)."""
    touched = {eid for call in calls for eid in call_entity_ids(call)}
    touched_names = [normalize_name(e.name) for e in map(grounding.registry.get, touched)
                     if e is not None]
    skipped = touched | {e.entity_id for e in left_alone}
    return [e for e in grounding.named.values() if e.entity_id not in skipped
            and not any(normalize_name(e.name) in name for name in touched_names)]


def _not_done(part: Part) -> str:
    """What the reply says of a part of a compound request that was not done."""
    if part.result.reply:
        return part.result.reply
    return f"I didn't understand \"{extract_secrets(part.said)[0]}\", so I did nothing about it."


def _with_secrets(call: ToolCall, secrets: list[str]) -> ToolCall:
    """The call with the marker the model saw put back to the code the user said."""
    if not secrets:
        return call
    args = {k: secrets[0] if v == SECRET_MARK else v for k, v in call.args.items()}
    return ToolCall(call.tool, args)

