"""Push rules: list, read, create, delete, enable and change actions.

Spec: client-server-api, "Push Rules: API".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("push_rules", __name__)
RULE = "/_matrix/client/v3/pushrules/global/<kind>/<rule_id>"


@bp.get("/_matrix/client/v3/pushrules/")
async def get_push_rules() -> dict:
    """operationId getPushRules. Spec: "GET /_matrix/client/v3/pushrules/"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return {"global": (await server.push.rules.get_ruleset(requester.user_id)).to_json()}


@bp.get("/_matrix/client/v3/pushrules/global/")
async def get_push_rules_global() -> dict:
    """operationId getPushRulesGlobal. Spec: "GET /_matrix/client/v3/pushrules/global/"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return (await server.push.rules.get_ruleset(requester.user_id)).to_json()


@bp.get(RULE)
async def get_push_rule(kind: str, rule_id: str) -> dict:
    """operationId getPushRule. Spec: "GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return (await server.push.rules.get_rule(requester.user_id, kind, rule_id)).to_json()


@bp.put(RULE)
async def set_push_rule(kind: str, rule_id: str) -> dict:
    """operationId setPushRule. Spec: "PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body()
    await server.push.rules.set_rule(requester.user_id, kind, rule_id, body,
                                     before=request.args.get("before") or None,
                                     after=request.args.get("after") or None)
    return {}


@bp.delete(RULE)
async def delete_push_rule(kind: str, rule_id: str) -> dict:
    """operationId deletePushRule. Spec: "DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    await server.push.rules.delete_rule(requester.user_id, kind, rule_id)
    return {}


@bp.get(f"{RULE}/enabled")
async def is_push_rule_enabled(kind: str, rule_id: str) -> dict:
    """operationId isPushRuleEnabled. Spec: "GET .../pushrules/global/{kind}/{ruleId}/enabled"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return {"enabled": (await server.push.rules.get_rule(requester.user_id, kind, rule_id)).enabled}


@bp.put(f"{RULE}/enabled")
async def set_push_rule_enabled(kind: str, rule_id: str) -> dict:
    """operationId setPushRuleEnabled. Spec: "PUT .../pushrules/global/{kind}/{ruleId}/enabled"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body()
    await server.push.rules.set_enabled(requester.user_id, kind, rule_id, body.get("enabled"))
    return {}


@bp.get(f"{RULE}/actions")
async def get_push_rule_actions(kind: str, rule_id: str) -> dict:
    """operationId getPushRuleActions. Spec: "GET .../pushrules/global/{kind}/{ruleId}/actions"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return {"actions": list((await server.push.rules.get_rule(requester.user_id, kind, rule_id)).actions)}


@bp.put(f"{RULE}/actions")
async def set_push_rule_actions(kind: str, rule_id: str) -> dict:
    """operationId setPushRuleActions. Spec: "PUT .../pushrules/global/{kind}/{ruleId}/actions"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body()
    await server.push.rules.set_actions(requester.user_id, kind, rule_id, body.get("actions"))
    return {}
