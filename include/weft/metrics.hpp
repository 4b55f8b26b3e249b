// weft/metrics.hpp: segmentation metrics (confusion matrix, mmseg's IoU/Acc/aAcc/mIoU/mAcc, the
// results table). weft/metrics/json.hpp is separate: it needs nlohmann-json.
#pragma once

#include "metrics/confusion_matrix.hpp"
#include "metrics/reduce_zero_label.hpp"
#include "metrics/segmentation_metrics.hpp"
#include "metrics/table.hpp"
