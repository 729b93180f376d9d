//! The older systems' paths, as thin aliases of the v1 handlers: same
//! bodies, same answers. The aliases of queue routes are registered by
//! `routes::queues` beside the routes they alias; this module adds the one
//! that answers for a queue or a task.
//!
//! | old | v1 |
//! |---|---|
//! | `POST /api/queue`, `POST /api/submit_job` | `POST /api/v1/queues` |
//! | `GET /api/status/{id}` | `GET /api/v1/queues/{id}`, or `GET /api/v1/tasks/{id}` for a task id |
//! | `GET /api/job/{id}` | `GET /api/v1/queues/{id}` |
//! | `POST /api/abort/{id}` | `POST /api/v1/queues/{id}/abort` |
//! | `DELETE /api/delete/{id}` | `DELETE /api/v1/queues/{id}` |

use actix_web::{HttpResponse, web};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::queues;
use crate::schemas::{Authed, IdParam, NotFoundError, QueueOrTask};
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/status/{id}").route(web::get().to(status)));
}

/// A queue id answers with the queue; otherwise a task id with the task.
#[utoipa::path(
    get,
    path = "/api/status/{id}",
    operation_id = "compat_status",
    tag = "compat",
    summary = "A queue, or else the task with that id (alias of GET /api/v1/queues/{id} and GET /api/v1/tasks/{id})",
    params(IdParam),
    responses(
        (status = 200, description = "The queue, or the task", body = QueueOrTask),
        (status = 404, description = "No such queue or task", body = NotFoundError),
        Authed,
    )
)]
async fn status(
    state: web::Data<AppState>,
    _user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match queues::load(&state, &id).await {
        Ok(queue) => Ok(HttpResponse::Ok().json(queue)),
        Err(ApiError::NotFound(_)) => {
            Ok(HttpResponse::Ok().json(queues::load_task(&state, &id).await?))
        }
        Err(e) => Err(e),
    }
}
