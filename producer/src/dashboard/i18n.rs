//! Every string the dashboard shows, in English and Vietnamese: two tables of the same shape, so
//! a missing translation does not compile and a reviewer reads them side by side. `{n}`-style
//! placeholders are filled in (escaped) by the caller.

/// What to say about one cause of a reconnection: what happened, and what to do.
pub struct CauseText {
    pub what: &'static str,
    pub todo: &'static str,
}

pub struct Strings {
    pub title: &'static str,
    pub subtitle: &'static str,
    // login
    pub sign_in: &'static str,
    pub sign_in_help: &'static str,
    pub token_label: &'static str,
    pub bad_token: &'static str,
    pub session_ended: &'static str,
    pub sign_out: &'static str,
    pub admin_caller: &'static str,
    pub account_caller: &'static str, // {id}
    pub user_caller: &'static str,    // {id}
    pub unavailable: &'static str,
    // counts and filters
    pub all: &'static str,
    pub needs_attention: &'static str,
    pub status_healthy: &'static str,
    pub status_refreshed: &'static str,
    pub status_reauthorization_required: &'static str,
    pub status_retrying: &'static str,
    pub data_access_expiring: &'static str,
    pub subscription_resubscribed: &'static str, // {when}
    pub subscription_missing: &'static str,      // {error}
    pub subscription_failed: &'static str,       // {error}
    pub status_unknown: &'static str,
    // table
    pub inboxes: &'static str,
    pub col_inbox: &'static str,
    pub col_page: &'static str,
    pub col_account: &'static str,
    pub col_status: &'static str,
    pub col_checked: &'static str,
    pub col_refreshed: &'static str,
    pub never: &'static str,
    pub just_now: &'static str,
    pub minutes_ago: &'static str,   // {n}
    pub hours_ago: &'static str,     // {n}
    pub days_ago: &'static str,      // {n}
    pub keeps_failing: &'static str, // {n}
    pub no_inboxes: &'static str,
    pub showing: &'static str, // {from} {to} {total}
    pub previous: &'static str,
    pub next: &'static str,
    // search
    pub search_label: &'static str,
    pub search_placeholder: &'static str,
    pub search_button: &'static str,
    pub search_clear: &'static str,
    pub no_match: &'static str, // {q}
    // grouped banners
    pub groups_heading: &'static str,
    pub group_fixes_many: &'static str, // {n}
    pub group_fixes_one: &'static str,
    pub group_more: &'static str,  // {n}
    pub groups_more: &'static str, // {n}
    // banner and actions
    pub reconnection_required: &'static str,
    pub facebook_said: &'static str,
    pub what_to_do: &'static str,
    pub try_auto_refresh: &'static str,
    pub refresh_needs_admin: &'static str,
    pub reconnect_manually: &'static str,
    pub refreshing: &'static str,
    pub result_refreshed: &'static str,
    pub result_healthy: &'static str,
    pub result_still_failing: &'static str,
    pub result_pending: &'static str,
    pub result_error: &'static str,
    // causes
    pub cause_password_changed: CauseText,
    pub cause_app_removed: CauseText,
    pub cause_page_gone: CauseText,
    pub cause_not_admin: CauseText,
    pub cause_permissions_revoked: CauseText,
    pub cause_session_expired: CauseText,
    pub cause_rate_limited: CauseText,
    pub cause_generic: CauseText,
    // queue panel
    pub queue: &'static str,
    pub queue_pending: &'static str,
    pub queue_scheduled: &'static str,
    pub queue_running: &'static str,
    pub queue_deferred: &'static str,
    pub queue_dead: &'static str,
    pub queue_open: &'static str,
    // chart
    pub chart_title: &'static str,
    pub chart_empty: &'static str,
    pub outcome_healthy: &'static str,
    pub outcome_refreshed: &'static str,
    pub outcome_retrying: &'static str,
    pub outcome_failed: &'static str,
    pub times_utc: &'static str,
}

pub static EN: Strings = Strings {
    title: "Facebook token health",
    subtitle: "Page access tokens of your Facebook inboxes",
    sign_in: "Sign in",
    sign_in_help: "Enter an api_access_token: your account's token, or the administrator token.",
    token_label: "API access token",
    bad_token: "That token is not valid. Check it and try again.",
    session_ended: "Your session has ended. Sign in again.",
    sign_out: "Sign out",
    admin_caller: "Administrator (all accounts)",
    account_caller: "Account {id}",
    user_caller: "Chatwoot user {id}",
    unavailable: "A backing service is unavailable. Try again in a moment.",
    all: "All",
    needs_attention: "Needs attention",
    status_healthy: "Healthy",
    status_refreshed: "Refreshed",
    status_reauthorization_required: "Reconnection required",
    status_retrying: "Retrying",
    data_access_expiring: "Still working, but Facebook stops sharing data on {date}: ask the page owner to reconnect before then.",
    subscription_resubscribed: "Webhooks: this Page had stopped sending its messages to the app; it was subscribed again on {when}.",
    subscription_missing: "Webhooks: this Page does not send its messages to the app, and subscribing it again failed ({error}). It is retried; reconnecting the Page also fixes it.",
    subscription_failed: "Webhooks: whether this Page still sends its messages to the app could not be checked ({error}). It is retried.",
    status_unknown: "Not checked yet",
    inboxes: "Facebook inboxes",
    col_inbox: "Inbox",
    col_page: "Page ID",
    col_account: "Account",
    col_status: "Status",
    col_checked: "Last checked",
    col_refreshed: "Last refreshed",
    never: "never",
    just_now: "just now",
    minutes_ago: "{n} min ago",
    hours_ago: "{n} h ago",
    days_ago: "{n} days ago",
    keeps_failing: "Keeps failing ({n} in a row)",
    no_inboxes: "No Facebook inbox matches this filter.",
    showing: "Showing {from}–{to} of {total}",
    previous: "Previous",
    next: "Next",
    search_label: "Search inboxes",
    search_placeholder: "Inbox name, page ID or inbox ID",
    search_button: "Search",
    search_clear: "Clear",
    no_match: "No Facebook inbox matches “{q}”.",
    groups_heading: "Reconnection required, by the Facebook user who connected the Pages",
    group_fixes_many: "One reconnect fixes these {n} pages:",
    group_fixes_one: "Reconnecting fixes this page:",
    group_more: "…and {n} more.",
    groups_more: "{n} more Facebook users must reconnect their Pages: filter by “Reconnection required” to see their inboxes.",
    reconnection_required: "Reconnection required",
    facebook_said: "Facebook said",
    what_to_do: "What to do:",
    try_auto_refresh: "Try auto refresh",
    refresh_needs_admin: "Only an administrator of this account can start a refresh.",
    reconnect_manually: "Reconnect manually",
    refreshing: "Refreshing…",
    result_refreshed: "Refreshed: a new token was saved and the inbox works again.",
    result_healthy: "The token is valid again; the inbox works.",
    result_still_failing: "Automatic refresh did not work. Reconnect the Page manually.",
    result_pending: "Still working on it (queued or retrying). Check again in a minute.",
    result_error: "The refresh could not be started. Try again.",
    cause_password_changed: CauseText {
        what: "The Facebook user who connected this Page changed their password, so Facebook ended the session.",
        todo: "Reconnect the Page with that Facebook account, signing in with the new password.",
    },
    cause_app_removed: CauseText {
        what: "The Facebook user who connected this Page removed the app from their account.",
        todo: "Reconnect the Page and allow the app again when Facebook asks.",
    },
    cause_page_gone: CauseText {
        what: "The Page was deleted or unpublished, or the user who connected it can no longer see it.",
        todo: "Check in Facebook that the Page exists and is published, then reconnect it.",
    },
    cause_not_admin: CauseText {
        what: "The Facebook user who connected this Page is no longer one of its admins.",
        todo: "Reconnect with a Facebook account that still manages the Page, or give that user their role back.",
    },
    cause_permissions_revoked: CauseText {
        what: "Permissions the app needs for this Page were taken away.",
        todo: "Reconnect the Page and grant every permission Facebook asks for (messaging and Page management).",
    },
    cause_session_expired: CauseText {
        what: "The Facebook session expired: the token ran out or the user was inactive for too long.",
        todo: "Reconnect the Page to start a new session.",
    },
    cause_rate_limited: CauseText {
        what: "Facebook is limiting calls for this Page for a while (rate limit).",
        todo: "Wait, it resolves itself: the service tries again when the limit lifts. Reconnecting does not help.",
    },
    cause_generic: CauseText {
        what: "Facebook no longer accepts this Page's access token.",
        todo: "Try an automatic refresh first; if that fails, reconnect the Page manually.",
    },
    queue: "Refresh queue",
    queue_pending: "Waiting",
    queue_scheduled: "Scheduled",
    queue_running: "Running",
    queue_deferred: "Deferred",
    queue_dead: "Dead",
    queue_open: "Open the queue: jobs, dead letters, schedule",
    chart_title: "Refresh outcomes, last 24 hours",
    chart_empty: "No checks in the last 24 hours.",
    outcome_healthy: "Valid",
    outcome_refreshed: "Refreshed",
    outcome_retrying: "Retrying",
    outcome_failed: "Failed",
    times_utc: "Times in UTC",
};

pub static VI: Strings = Strings {
    title: "Tình trạng token Facebook",
    subtitle: "Token truy cập Trang của các hộp thư Facebook",
    sign_in: "Đăng nhập",
    sign_in_help: "Nhập api_access_token: token của tài khoản bạn, hoặc token quản trị.",
    token_label: "Token truy cập API",
    bad_token: "Token không hợp lệ. Vui lòng kiểm tra và thử lại.",
    session_ended: "Phiên đăng nhập đã kết thúc. Vui lòng đăng nhập lại.",
    sign_out: "Đăng xuất",
    admin_caller: "Quản trị viên (tất cả tài khoản)",
    account_caller: "Tài khoản {id}",
    user_caller: "Người dùng Chatwoot {id}",
    unavailable: "Một dịch vụ nền đang không khả dụng. Vui lòng thử lại sau giây lát.",
    all: "Tất cả",
    needs_attention: "Cần chú ý",
    status_healthy: "Hoạt động tốt",
    status_refreshed: "Đã làm mới",
    status_reauthorization_required: "Cần kết nối lại",
    status_retrying: "Đang thử lại",
    data_access_expiring: "Vẫn đang hoạt động, nhưng Facebook sẽ ngừng chia sẻ dữ liệu vào ngày {date}: hãy nhờ chủ trang kết nối lại trước ngày đó.",
    subscription_resubscribed: "Webhook: Trang này đã ngừng gửi tin nhắn đến ứng dụng; hệ thống đã đăng ký lại vào {when}.",
    subscription_missing: "Webhook: Trang này không gửi tin nhắn đến ứng dụng, và việc đăng ký lại đã thất bại ({error}). Hệ thống sẽ thử lại; kết nối lại Trang cũng khắc phục được.",
    subscription_failed: "Webhook: không kiểm tra được Trang này còn gửi tin nhắn đến ứng dụng hay không ({error}). Hệ thống sẽ thử lại.",
    status_unknown: "Chưa kiểm tra",
    inboxes: "Hộp thư Facebook",
    col_inbox: "Hộp thư",
    col_page: "ID Trang",
    col_account: "Tài khoản",
    col_status: "Trạng thái",
    col_checked: "Kiểm tra lần cuối",
    col_refreshed: "Làm mới lần cuối",
    never: "chưa có",
    just_now: "vừa xong",
    minutes_ago: "{n} phút trước",
    hours_ago: "{n} giờ trước",
    days_ago: "{n} ngày trước",
    keeps_failing: "Liên tục thất bại ({n} lần liên tiếp)",
    no_inboxes: "Không có hộp thư Facebook nào khớp với bộ lọc này.",
    showing: "Hiển thị {from}–{to} trên tổng số {total}",
    previous: "Trang trước",
    next: "Trang sau",
    search_label: "Tìm hộp thư",
    search_placeholder: "Tên hộp thư, ID Trang hoặc ID hộp thư",
    search_button: "Tìm",
    search_clear: "Xóa",
    no_match: "Không có hộp thư Facebook nào khớp với “{q}”.",
    groups_heading: "Cần kết nối lại, theo người dùng Facebook đã kết nối các Trang",
    group_fixes_many: "Kết nối lại một lần sẽ khắc phục cả {n} trang này:",
    group_fixes_one: "Kết nối lại sẽ khắc phục trang này:",
    group_more: "…và {n} trang khác.",
    groups_more: "Còn {n} người dùng Facebook khác cần kết nối lại Trang của họ: lọc theo “Cần kết nối lại” để xem các hộp thư đó.",
    reconnection_required: "Cần kết nối lại",
    facebook_said: "Facebook báo",
    what_to_do: "Cách xử lý:",
    try_auto_refresh: "Thử refresh tự động",
    refresh_needs_admin: "Chỉ quản trị viên của tài khoản này mới có thể làm mới.",
    reconnect_manually: "Kết nối lại thủ công",
    refreshing: "Đang làm mới…",
    result_refreshed: "Đã làm mới: token mới đã được lưu và hộp thư hoạt động trở lại.",
    result_healthy: "Token đã hợp lệ trở lại; hộp thư hoạt động bình thường.",
    result_still_failing: "Refresh tự động không thành công. Hãy kết nối lại Trang thủ công.",
    result_pending: "Vẫn đang xử lý (đang chờ hoặc đang thử lại). Hãy kiểm tra lại sau một phút.",
    result_error: "Không thể bắt đầu làm mới. Vui lòng thử lại.",
    cause_password_changed: CauseText {
        what: "Người dùng Facebook đã kết nối Trang này đã đổi mật khẩu, nên Facebook đã kết thúc phiên đăng nhập.",
        todo: "Kết nối lại Trang bằng chính tài khoản Facebook đó, đăng nhập với mật khẩu mới.",
    },
    cause_app_removed: CauseText {
        what: "Người dùng Facebook đã kết nối Trang này đã gỡ ứng dụng khỏi tài khoản của họ.",
        todo: "Kết nối lại Trang và cho phép ứng dụng một lần nữa khi Facebook hỏi.",
    },
    cause_page_gone: CauseText {
        what: "Trang đã bị xóa hoặc ngừng xuất bản, hoặc người dùng đã kết nối không còn thấy Trang này.",
        todo: "Kiểm tra trên Facebook rằng Trang vẫn tồn tại và đang được xuất bản, rồi kết nối lại.",
    },
    cause_not_admin: CauseText {
        what: "Người dùng Facebook đã kết nối Trang này không còn là quản trị viên của Trang.",
        todo: "Kết nối lại bằng một tài khoản Facebook vẫn đang quản lý Trang, hoặc cấp lại vai trò cho người dùng đó.",
    },
    cause_permissions_revoked: CauseText {
        what: "Các quyền mà ứng dụng cần cho Trang này đã bị thu hồi.",
        todo: "Kết nối lại Trang và cấp đủ mọi quyền Facebook yêu cầu (nhắn tin và quản lý Trang).",
    },
    cause_session_expired: CauseText {
        what: "Phiên Facebook đã hết hạn: token hết hạn hoặc người dùng không hoạt động quá lâu.",
        todo: "Kết nối lại Trang để bắt đầu một phiên mới.",
    },
    cause_rate_limited: CauseText {
        what: "Facebook đang tạm giới hạn số lần gọi cho Trang này (giới hạn tần suất).",
        todo: "Hãy chờ, sự cố sẽ tự hết: hệ thống sẽ thử lại khi hết giới hạn. Kết nối lại không giúp được gì.",
    },
    cause_generic: CauseText {
        what: "Facebook không còn chấp nhận token truy cập của Trang này.",
        todo: "Hãy thử refresh tự động trước; nếu không được, hãy kết nối lại Trang thủ công.",
    },
    queue: "Hàng đợi làm mới",
    queue_pending: "Đang chờ",
    queue_scheduled: "Đã lên lịch",
    queue_running: "Đang chạy",
    queue_deferred: "Tạm hoãn",
    queue_dead: "Thất bại hẳn",
    queue_open: "Mở hàng đợi: việc, việc thất bại hẳn, lịch chạy",
    chart_title: "Kết quả làm mới trong 24 giờ qua",
    chart_empty: "Không có lần kiểm tra nào trong 24 giờ qua.",
    outcome_healthy: "Còn hiệu lực",
    outcome_refreshed: "Đã làm mới",
    outcome_retrying: "Đang thử lại",
    outcome_failed: "Thất bại",
    times_utc: "Giờ theo UTC",
};

impl Strings {
    /// The label of a status value (`healthy`, `reauthorization_required`, ...).
    pub fn status(&self, status: &str) -> &'static str {
        match status {
            "healthy" => self.status_healthy,
            "refreshed" => self.status_refreshed,
            "reauthorization_required" => self.status_reauthorization_required,
            "retrying" => self.status_retrying,
            _ => self.status_unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_wording() {
        assert_eq!(VI.reconnection_required, "Cần kết nối lại");
        assert_eq!(VI.try_auto_refresh, "Thử refresh tự động");
        assert_eq!(VI.reconnect_manually, "Kết nối lại thủ công");
    }
}
