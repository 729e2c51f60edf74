"""The runbook's model now lives in ``pausegate.models.runbook``."""

# shim: re-exported until importers move
from pausegate.models.runbook import (  # noqa: F401
    SLUG,
    SQL_IDENT,
    Slug,
    Program,
    WritesSpec,
    FleetSpec,
    DataSubjectsSpec,
    DatasetSpec,
    AuditSourceSpec,
    ExposureSpec,
    ChecklistItemSpec,
    SeparationOfDuties,
    ResumePolicy,
    Roles,
    NotificationSpec,
    ConsentSpec,
    DataTypeColumns,
    CollectionSpec,
    WatchSpec,
    Runbook,
    _find_cycle,
)
from pausegate.models.base import Model  # noqa: F401
from pausegate.models.collection import DATA_TYPE  # noqa: F401
from pausegate.models.collection import MAX_DATA_TYPES  # noqa: F401
