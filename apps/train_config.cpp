#include "apps/train_config.h"

namespace crayon {

void visit_config(TrainConfig& c, const ConfigVisitor& v) {
  v.text("dataset", c.dataset);
  v.text("data_dir", c.data_dir);
  v.text("model", c.model);
  v.integer("epochs", c.epochs);
  v.integer("batch_size", c.batch_size);
  v.real("lr", c.lr);
  v.text("optimizer", c.optimizer);
  v.real("momentum", c.momentum);
  v.integer("nesterov", c.nesterov);
  v.real("weight_decay", c.weight_decay);
  v.real("l1", c.l1);
  v.real("l2", c.l2);
  v.text("lr_schedule", c.lr_schedule);
  v.real("clip_grad_norm", c.clip_grad_norm);
  v.integer("seed", c.seed);
  v.integer("val", c.val);
  v.integer("augment", c.augment);
  v.text("init", c.init);
  v.integer("train_limit", c.train_limit);
  v.integer("test_limit", c.test_limit);
  v.text("qat", c.qat);
  v.integer("qat_start_epoch", c.qat_start_epoch);
  v.integer("update_bits", c.update_bits);
  v.integer("update_frac_bits", c.update_frac_bits);
  v.text("update_rounding", c.update_rounding);
}

}  // namespace crayon
