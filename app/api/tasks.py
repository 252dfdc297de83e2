"""/api/v1/tasks/: list (within the scope), show, add, change, done, cancel, reopen."""
from __future__ import annotations

from flask_appbuilder.api import expose, rison
from flask_appbuilder.security.decorators import permission_name, protect

from app.api import schemas
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.models import Task
from app.security import RES_TASK, current_user
from app.services import tasks


def _answer(task: Task) -> dict:
    return schemas.dump(schemas.TaskResult, {"id": task.id, "result": tasks.to_dict(task)})


class TaskApi(DocumentedApi):
    resource_name = "tasks"
    class_permission_name = RES_TASK
    openapi_spec_tag = "Tasks"
    apispec_parameter_schemas = {
        "TaskListQuery": schemas.task_list_query(tasks.MAX_PAGE_SIZE)}

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @rison(schemas.TASK_LIST_KEYS)
    @maps_domain_errors
    def list_tasks(self, **kwargs):
        """The tasks the caller may read.
        ---
        get:
          summary: 待办列表 — the caller's tasks, a manager's team's, every task for admins and
            auditors; by due time; count is the total over every page
          parameters:
          - in: query
            name: q
            description: 'rison: (page:0,page_size:50,status:open,owner_id:7)'
            content:
              application/json:
                schema: {$ref: '#/components/schemas/TaskListQuery'}
          answer: TaskPage
          errors: [400, 401, 403]
        """
        args = kwargs.get("rison") or {}
        page = tasks.list_tasks(current_user(), args.get("status"), args.get("owner_id"),
                                args.get("page", 0), args.get("page_size", tasks.PAGE_SIZE))
        names = tasks.record_names(page.items)
        return self.response(200, **schemas.dump(schemas.TaskPage, {
            "count": page.total, "page": page.page, "page_size": page.page_size,
            "result": [tasks.to_dict(t, names) for t in page.items]}))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def show(self, pk: int):
        """One task.
        ---
        get:
          summary: 待办 — one task the caller may read
          answer: TaskResult
          errors: [401, 403, 404]
        """
        return self.response(200, **_answer(tasks.get_task(current_user(), pk)))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def create(self):
        """Add a task.
        ---
        post:
          summary: 新建待办 — for the caller, or (managers, admins) for a user in their scope;
            a linked record must be one the caller may read
          body: TaskCreate
          answer: TaskResult
          errors: [400, 401, 403, 404]
        """
        task = tasks.create(current_user(), load_body(schemas.TaskCreate))
        return self.response(200, **_answer(task))

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def change(self, pk: int):
        """Change an open task.
        ---
        put:
          summary: 修改待办 — subject, notes, due time or owner of an open task
          body: TaskUpdate
          answer: TaskResult
          errors: [400, 401, 403, 404, 409]
        """
        tasks.get_task(current_user(), pk, write=True)
        task = tasks.update_task(current_user(), pk, load_body(schemas.TaskUpdate))
        return self.response(200, **_answer(task))

    @expose("/<int:pk>/done", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def done(self, pk: int):
        """Mark a task done.
        ---
        post:
          summary: 完成 — an open task is done
          answer: TaskResult
          errors: [401, 403, 404, 409]
        """
        return self.response(200, **_answer(tasks.complete(current_user(), pk)))

    @expose("/<int:pk>/cancel", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def cancel(self, pk: int):
        """Cancel a task.
        ---
        post:
          summary: 取消 — an open task is cancelled
          answer: TaskResult
          errors: [401, 403, 404, 409]
        """
        return self.response(200, **_answer(tasks.cancel(current_user(), pk)))

    @expose("/<int:pk>/reopen", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def reopen(self, pk: int):
        """Reopen a task.
        ---
        post:
          summary: 重新打开 — a done or cancelled task is open again (and reminded again)
          answer: TaskResult
          errors: [401, 403, 404, 409]
        """
        return self.response(200, **_answer(tasks.reopen(current_user(), pk)))
