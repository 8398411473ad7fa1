//! The source credentials page's UI text.

use super::super::i18n::Table;

pub(crate) const TEXT: Table = &[
    ("credentials.title", "Source credentials", "模型来源凭证"),
    (
        "credentials.intro",
        "Keys your deployments download model weights with: an object store's access key pair, a Hugging Face token or a ModelScope token. The hub keeps them sealed and writes each into a cluster only where a deployment fetching with it runs, for the container that fetches the weights alone. Their values are never shown again.",
        "部署下载模型权重时使用的密钥：对象存储的访问密钥对、Hugging Face 令牌或 ModelScope 令牌。平台加密保存这些密钥，只写入运行着使用它的部署的集群，且仅供下载权重的容器读取。密钥的值不会再次显示。",
    ),
    ("credentials.tenant", "Tenant", "租户"),
    (
        "credentials.none",
        "No source credentials yet: deployments fetch only public models and the hub's own model store.",
        "尚无来源凭证：部署只能下载公开模型和平台自有模型仓库中的模型。",
    ),
    ("credentials.name", "Name", "名称"),
    ("credentials.keys", "Keys", "密钥"),
    (
        "credentials.secret",
        "Secret in the cluster",
        "集群中的 Secret",
    ),
    ("credentials.used_by", "Used by", "使用它的部署"),
    ("credentials.updated", "Updated", "更新时间"),
    ("credentials.set", "set", "已设置"),
    ("credentials.unused", "no deployment", "无部署使用"),
    ("credentials.remove", "Remove", "删除"),
    (
        "credentials.secret_hint",
        "A deployment fetches with a credential when it names it: the Credential choice on the deploy page of a model read from its source, sourceCredential in POST /api/v1/deployments, or the Secret's name as sourceSecret in a ModelDeployment. A credential is not removed while a deployment uses it.",
        "部署在指定凭证时使用它：从来源读取的模型的部署页面中的“凭证”选项、POST /api/v1/deployments 中的 sourceCredential，或在 ModelDeployment 的 sourceSecret 中填写该 Secret 的名称。有部署使用的凭证不能删除。",
    ),
    (
        "credentials.add",
        "Add or replace a credential",
        "添加或替换凭证",
    ),
    (
        "credentials.add_hint",
        "Saving under a name already in use replaces all of that credential's keys; deployments using it fetch with the new keys from their next pod on. Fill in only the fields of the kind you choose.",
        "使用已存在的名称保存会替换该凭证的全部密钥；使用它的部署从下一个 Pod 起使用新密钥。只需填写所选类型的字段。",
    ),
    (
        "credentials.name_hint",
        "Lower-case letters, digits and '-', starting with a letter and ending with a letter or digit; at most 40.",
        "小写字母、数字和“-”，以字母开头、以字母或数字结尾，最多 40 个字符。",
    ),
    ("credentials.kind", "Kind", "类型"),
    (
        "credentials.kind_object_store",
        "Object store (S3, OSS, OBS, COS)",
        "对象存储（S3、OSS、OBS、COS）",
    ),
    (
        "credentials.kind_hugging_face",
        "Hugging Face",
        "Hugging Face",
    ),
    (
        "credentials.kind_modelscope",
        "ModelScope",
        "魔搭 ModelScope",
    ),
    ("credentials.access_key_id", "Access key ID", "访问密钥 ID"),
    (
        "credentials.secret_access_key",
        "Secret access key",
        "秘密访问密钥",
    ),
    (
        "credentials.session_token",
        "Session token (temporary keys only)",
        "会话令牌（仅临时密钥需要）",
    ),
    (
        "credentials.hf_token",
        "Hugging Face token",
        "Hugging Face 令牌",
    ),
    (
        "credentials.modelscope_token",
        "ModelScope token",
        "ModelScope 令牌",
    ),
    (
        "credentials.endpoint",
        "Endpoint, for a store the cloud's defaults do not reach (a MinIO, a private link; optional)",
        "端点，用于云默认地址无法访问的存储（如 MinIO、私网连接；可选）",
    ),
    ("credentials.region", "Region (optional)", "地域（可选）"),
    (
        "credentials.hf_endpoint",
        "Mirror (optional)",
        "镜像地址（可选）",
    ),
    (
        "credentials.modelscope_endpoint",
        "Mirror or international site (optional)",
        "镜像或国际站地址（可选）",
    ),
    ("credentials.save", "Save credential", "保存凭证"),
    (
        "credentials.read_only",
        "Only the tenant's admins can add, replace or remove credentials.",
        "只有租户管理员可以添加、替换或删除凭证。",
    ),
    (
        "credentials.admins_only",
        "Only the tenant's admins and platform admins can change its source credentials.",
        "只有租户管理员和平台管理员可以修改租户的来源凭证。",
    ),
    (
        "credentials.bad_kind",
        "Choose a kind: object store, Hugging Face or ModelScope.",
        "请选择类型：对象存储、Hugging Face 或 ModelScope。",
    ),
    (
        "credentials.name_missing",
        "Give the credential a name.",
        "请填写凭证名称。",
    ),
    (
        "credentials.other_kind",
        "Fields of another kind were filled in; clear them, or choose their kind:",
        "填写了其他类型的字段；请清空这些字段，或选择它们所属的类型：",
    ),
    ("credentials.missing", "required and empty:", "必填但为空："),
    (
        "credentials.saved_partly",
        "was saved, but its Secret could not be written again in these cluster namespaces; deployments there fetch with the old keys until it is. Save it again to retry.",
        "已保存，但无法在以下集群命名空间中重新写入其 Secret；在写入成功之前，那里的部署仍使用旧密钥。请再次保存以重试。",
    ),
    (
        "credentials.removed_partly",
        "was removed, but its Secret could not be deleted in these cluster namespaces; delete it there with kubectl.",
        "已删除，但无法从以下集群命名空间中删除其 Secret；请使用 kubectl 在那里删除。",
    ),
    ("credentials.pick", "Choose a tenant", "选择租户"),
];
